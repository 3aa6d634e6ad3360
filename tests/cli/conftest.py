"""Run the installed ``citadel`` script as a subprocess, and shops seeded in-process for it to operate on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citadel.security.encryption import MasterKeys

from .shop_data import Shop, seed

CITADEL = str(Path(sys.executable).parent / "citadel")
REPO = Path(__file__).resolve().parents[2]
FIXTURE_APPS = REPO / "tests" / "fixtures" / "cli_apps"
"""Holds ``cli_leaky``; always on the subprocess' PYTHONPATH."""

# Variables of the caller's shell that would change what the command line reads or prints.
_IGNORED = {"PYTHONPATH", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS", "LINES"}


class Citadel:
    """``citadel(*args)`` runs the command line in the repository root (so ``examples`` imports from the current
    directory), with HOME in the test's directory and no ``CITADEL_*`` variables but those given."""

    def __init__(self, home: Path, keys: Path | None) -> None:
        self.home = home
        self.keys = keys

    def env(self, cwd: Path = REPO, **variables: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_") and k not in _IGNORED}
        path = [str(FIXTURE_APPS)] if cwd == REPO else [str(FIXTURE_APPS), str(REPO)]
        env.update(HOME=str(self.home), COLUMNS="80", PYTHONPATH=os.pathsep.join(path))
        if self.keys is not None:  # the seeded shop's master keys (a test may give others)
            env["CITADEL_MASTER_KEY_FILE"] = str(self.keys)
        env.update(variables)
        return env

    def __call__(self, *args: str, cwd: Path = REPO, **variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CITADEL, *args],
            cwd=cwd,
            env=self.env(cwd, **variables),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def master_keys(tmp_path: Path) -> Path:
    """A master key file of the test's own: the shops are sealed under it, and the command line is given it."""
    path = tmp_path / "master-keys.json"
    MasterKeys.generate().save(path)
    return path


@pytest.fixture
def citadel(tmp_path: Path, request: pytest.FixtureRequest) -> Citadel:
    """The command line; in a test with a seeded shop, given that shop's master keys."""
    home = tmp_path / "home"
    home.mkdir()
    seeded = {"shop", "unsettled_shop"} & set(request.fixturenames)
    return Citadel(home, request.getfixturevalue("master_keys") if seeded else None)


@pytest.fixture
def shop(tmp_path: Path, master_keys: Path) -> Shop:
    """A settled shop: one user, one item, one order of two of it (1000 cents), paid; access granted."""
    return asyncio.run(seed(f"sqlite:///{tmp_path}/shop.db", master_keys))


@pytest.fixture
def unsettled_shop(tmp_path: Path, master_keys: Path) -> Shop:
    """A shop whose consumers never ran: three events, and analytics' async projections at position 0."""
    return asyncio.run(seed(f"sqlite:///{tmp_path}/unsettled.db", master_keys, consumers=False))
