"""The shop's OpenAPI document is exact, as a third-party client sees it: schemathesis runs every check in all
four phases (examples, coverage, fuzzing, stateful) against a real ``citadel serve`` over TCP, as an
administrator, with a fixed seed and a bounded number of cases, and finds no failure.

Two checks are configured, narrowly, where schemathesis is wrong about us. This module is also the hooks file
that ``schemathesis run`` loads (``SCHEMATHESIS_HOOKS``): it swaps ``positive_data_acceptance`` for a twin that
lets a request matching the document be refused for what no document can state, and only for that:

* 422 ``position-not-written``: a ``min_position`` in range that this log has not reached (the document cannot
  know the log's head);
* 422 ``idempotency-key-reused``: schemathesis sends the same generated ``Idempotency-Key`` with another command
  (the IETF Idempotency-Key draft answers 422);
* 422 ``invalid-command``: a rule of the command's decider, such as an existing customer;
* 413: a body over the server's ``max_body`` (a limit of the deployment; a string's ``maxLength`` counts
  characters, and one character can take twelve bytes of escaped JSON).

Any other 422, or a 400, to schema-valid data is still a failure. And ``negative_data_rejection`` counts 413 as
the refusal it is (its default list leaves it out).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

SEED = 20261207
EXAMPLES = 40
"""Generated cases per operation and phase: a run takes seconds, and each failure found so far showed within it."""
STATE_ONLY = frozenset(
    f"urn:citadel:problem:{slug}" for slug in ("position-not-written", "idempotency-key-reused", "invalid-command")
)


def _problem_type(response: Any) -> str | None:
    try:
        found = json.loads(response.content)
    except ValueError:
        return None
    return found.get("type") if isinstance(found, dict) else None


def positive_data_acceptance_but_state(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except for 413 and the 422s of ``STATE_ONLY`` (see the module's docstring)."""
    if response.status_code == 413 or (response.status_code == 422 and _problem_type(response) in STATE_ONLY):
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


if os.environ.get("SCHEMATHESIS_HOOKS") == __file__:  # in schemathesis' process only, not in pytest's
    schemathesis.check(positive_data_acceptance_but_state)


pytestmark = pytest.mark.slow

CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
"""


def test_schemathesis_finds_no_failure_against_the_served_shop(tmp_path: Path) -> None:
    from hostile import ROOT, serving
    from shopper import token

    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",  # replaced by positive_data_acceptance_but_state
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {token('schemathesis-admin', 'admin')}",
    ]
    env = os.environ | {
        "SCHEMATHESIS_HOOKS": __file__,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
    }
    with serving(tmp_path) as served:
        run = subprocess.run(
            [*command, f"{served.server.url}/schema/openapi.json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        log = served.server.log()
    output = f"{run.stdout}\n{run.stderr}\n--- server output ---\n{log}"
    assert run.returncode == 0, output
    assert re.search(r"Tested: +16\b", run.stdout), output
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated is not None, output
    assert int(generated[1]) > 16 * EXAMPLES, output
