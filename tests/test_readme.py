"""The README: its two commands, its length, its links, and its core example, which is
``examples/quickstart/bank.py`` and runs under ``citadel serve`` with its routes. (``tests/test_docs.py`` runs
every block of it as well.)"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from examples.quickstart.bank import main
from tests.docs.blocks import ROOT, blocks_of
from tests.docs.session import free_port, prepare

README = ROOT / "README.md"
QUICKSTART = ROOT / "examples" / "quickstart" / "bank.py"
CITADEL = str(Path(sys.executable).parent / "citadel")


def test_the_readme_starts_with_exactly_two_commands_make_run_and_make_test() -> None:
    first = blocks_of(README)[0]
    commands = [line.split("#")[0].strip() for line in first.text.splitlines()]
    assert commands == ["make run", "make test"]


def test_the_readme_stays_under_300_lines() -> None:
    assert len(README.read_text().splitlines()) < 300


def linked_and_present() -> tuple[set[str], set[str]]:
    """The top-level docs pages the README links, and those in ``docs/`` (a subfolder's pages, such as
    ``docs/benchmarks/history.md``, are linked from their parent page and the site's navigation)."""
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)[)#]", README.read_text()))
    return linked, {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}


def test_the_readme_links_every_top_level_docs_page() -> None:
    linked, present = linked_and_present()
    assert present - linked == set()


def test_every_docs_page_the_readme_links_exists() -> None:
    linked, present = linked_and_present()
    assert linked - present == set()


def test_the_readme_core_example_is_the_quickstart_file_as_it_is() -> None:
    python = [b for b in blocks_of(README) if b.lang == "python"]
    assert python[0].file == "examples/quickstart/bank.py"
    assert python[0].text == QUICKSTART.read_text()


async def test_the_quickstart_deposits_and_reads_the_balance(tmp_path: Path) -> None:
    assert await main(f"sqlite:///{tmp_path / 'bank.db'}") == {"owner": "ada", "balance": 250}


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """``citadel serve examples.quickstart.bank:app --dev`` from ``folder``, as the README runs it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen(
        [CITADEL, "serve", "examples.quickstart.bank:app", "--dev", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the server did not start:\n{(folder / 'serve.log').read_text()[-3000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_the_quickstart_served_by_citadel_serve_answers_its_routes(tmp_path: Path) -> None:
    prepare(tmp_path)
    with serving(tmp_path) as url:
        paths = httpx.get(f"{url}/schema/openapi.json").json()["paths"]
        assert {"/bank/open-account", "/bank/deposit", "/bank/account"} <= set(paths)
        opened = httpx.post(f"{url}/bank/open-account", json={"owner": "ada"})
        assert opened.status_code == 200
        account_id = opened.json()["account_id"]
        deposited = httpx.post(f"{url}/bank/deposit", json={"account_id": account_id, "amount": 250})
        assert deposited.status_code == 200
        assert int(deposited.headers["citadel-position"]) == 2
        refused = httpx.post(f"{url}/bank/deposit", json={"account_id": account_id, "amount": 0})
        assert (refused.status_code, refused.json()["detail"]) == (409, "deposits are positive")
        read = httpx.get(f"{url}/bank/account", params={"account_id": account_id})
        assert read.json() == {"owner": "ada", "balance": 250}
