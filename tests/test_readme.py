"""The README's code runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


async def test_the_readme_example_module_runs_and_its_decider_tests_pass(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # the decider tests raise if they fail
    assert await namespace["main"](str(tmp_path / "bank.db")) == {"owner": "ada", "balance": 250}
