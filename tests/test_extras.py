"""Optional extras: importing Citadel loads no extra's package; a feature whose extra is missing fails with one
line naming the extra; and the core alone, installed in a fresh virtual environment, runs the README's example
and serves the shop on SQLite."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from citadel.errors import ConfigurationError
from citadel.extras import EXTRAS, require
from tests.processes import stop

ROOT = Path(__file__).resolve().parents[1]
CITADEL = str(Path(sys.executable).parent / "citadel")
PACKAGES = ("asyncpg", "nats", "nkeys", "redis", "granian")
"""The packages of the postgres, nats, redis and granian extras, by their import names."""

MISSING = f"""
import sys


class Missing:
    \"\"\"Finds none of the extras' packages, as if they were not installed.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {PACKAGES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name.partition(".")[0])
        if name.startswith("opentelemetry.sdk"):  # the otel extra's SDK (the API is a core dependency)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name="opentelemetry.sdk")
        return None


sys.meta_path.insert(0, Missing())
"""
"""A ``sitecustomize`` that makes the extras' packages unimportable, installed or not."""


def fix(feature: str, extra: str) -> str:
    return f"{feature} needs the {extra} extra: pip install 'citadel[{extra}]'"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    """This environment without Citadel's settings or a Python path, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_") and k != "PYTHONPATH"}
    return kept | extra


@pytest.fixture
def without_extras(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which no extra is installed (it imports ``examples`` from the checkout)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(MISSING)
    return environment(PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end; kill it and what it started if it outlives ``timeout`` seconds."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def python(code: str, cwd: Path, env: dict[str, str]) -> str:
    """What ``code`` prints, run by this Python in ``cwd`` (fails the test if it fails)."""
    done = run([sys.executable, "-c", code], cwd, env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


LOADED = f"""
import sys

import citadel
import citadel.cli
import citadel.messaging
import citadel.security
import citadel.server
import citadel.setup
import citadel.store
from citadel.config import load_settings
from citadel.setup import assemble, prepare
from examples.shop import build_app

settings = load_settings(app="examples.shop:app", dev=True)
prepare(settings)  # development mode's secret and keys, in the test's folder
assemble(build_app(), settings)
print(sorted({{name.partition(".")[0] for name in sys.modules}} & set({PACKAGES!r})))
print(sorted(name for name in sys.modules if name.startswith("opentelemetry.sdk")))
"""


def test_importing_citadel_and_building_the_shops_asgi_app_loads_no_extras_package(tmp_path: Path) -> None:
    # opentelemetry-api is a core dependency; the otel extra's SDK is loaded only when tracing is on.
    assert python(LOADED, tmp_path, environment(PYTHONPATH=str(ROOT))).splitlines() == ["[]", "[]"]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_extras_packages_are_installed_here_but_unimportable_without_extras(
    package: str, tmp_path: Path, without_extras: dict[str, str]
) -> None:
    assert python(f"import {package}; print('imported')", tmp_path, environment()) == "imported"
    refused = run([sys.executable, "-c", f"import {package}"], tmp_path, without_extras)
    assert refused.stderr.splitlines()[-1] == f"ModuleNotFoundError: No module named '{package}'"


FAILING = {
    "postgres": (
        "from citadel.messages import EventRegistry\nfrom citadel.store import open_store\n"
        "open_store('postgresql://citadel@127.0.0.1:1/shop', EventRegistry())",
        fix("the PostgreSQL store", "postgres"),
    ),
    "nats": (
        "from citadel.messaging.nats import NatsBroker\nNatsBroker('nats://127.0.0.1:1')",
        fix("a NATS broker", "nats"),
    ),
    "nkeys": (
        "from pathlib import Path\nfrom citadel.messaging.connection import BrokerConnection\n"
        "Path('seed.nk').write_text('SUAAAA'); Path('seed.nk').chmod(0o600)\n"
        "BrokerConnection.from_files(nkey_seed_file='seed.nk')",
        fix("broker_nkey_seed_file", "nats"),
    ),
    "redis": (
        "from citadel.security import open_rate_limiter\nopen_rate_limiter('redis://127.0.0.1:1')",
        fix("Redis rate limiting", "redis"),
    ),
    "otel": ("from citadel.tracing import configure_tracing\nconfigure_tracing('otlp')", fix("tracing", "otel")),
}


@pytest.mark.parametrize("case", FAILING)
def test_a_feature_without_its_extra_raises_a_configuration_error_naming_the_extra(
    case: str, tmp_path: Path, without_extras: dict[str, str]
) -> None:
    code, message = FAILING[case]
    caught = f"from citadel.errors import ConfigurationError\ntry:\n    {code.replace(chr(10), chr(10) + '    ')}\n"
    caught += "except ConfigurationError as exc:\n    print(exc)\nelse:\n    print('no error')"
    assert python(caught, tmp_path, without_extras) == message


SERVED = {
    "postgres": (["--store", "postgresql://citadel@127.0.0.1:1/shop"], {}, fix("the PostgreSQL store", "postgres")),
    "nats": (["--broker", "nats://127.0.0.1:1", "--modules", "orders"], {}, fix("a NATS broker", "nats")),
    "redis": ([], {"CITADEL_REDIS_URL": "redis://127.0.0.1:1"}, fix("Redis rate limiting", "redis")),
    "granian": (["--server", "granian"], {}, fix("serving with granian", "granian")),
    "otel": (["--tracing", "otlp"], {}, fix("tracing", "otel")),
}


@pytest.mark.parametrize("case", SERVED)
def test_serving_without_an_extra_it_needs_exits_2_with_one_line_naming_the_extra(
    case: str, tmp_path: Path, without_extras: dict[str, str]
) -> None:
    options, settings, message = SERVED[case]
    command = [CITADEL, "serve", "examples.shop:app", "--dev", "--port", str(free_port()), *options]
    done = run(command, tmp_path, without_extras | settings)
    assert done.returncode == 2, done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [f"error: {message}"]
    assert "Traceback" not in done.stderr


def test_pyproject_declares_each_extra_all_of_them_and_dev_with_all() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(declared) == {*EXTRAS, "all", "dev"}
    assert declared["all"] == [f"citadel[{','.join(EXTRAS)}]"]
    assert "citadel[all]" in declared["dev"]


def test_require_returns_an_installed_module() -> None:
    assert require("sqlite3", "postgres", "anything").connect is not None


def test_require_of_a_missing_module_names_the_extra_and_the_feature() -> None:
    with pytest.raises(ConfigurationError) as caught:
        require("citadel_no_such_package.client", "redis", "the frobnicator")
    assert str(caught.value) == "the frobnicator needs the redis extra: pip install 'citadel[redis]'"


def test_require_of_a_module_that_fails_to_import_something_else_lets_that_error_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "citadel_half_installed.py").write_text("import citadel_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="citadel_no_such_dependency"):
        require("citadel_half_installed", "nats", "the frobnicator")


@dataclass(frozen=True)
class Fresh:
    """A virtual environment with Citadel installed without extras, and a folder holding a copy of ``examples``."""

    bin: Path
    folder: Path

    def env(self) -> dict[str, str]:
        return environment(VIRTUAL_ENV=str(self.bin.parent), PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    """``pip install citadel`` (this checkout's files, not editable) into a new virtual environment."""
    root = tmp_path_factory.mktemp("fresh")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "var", "*.db*")
    source = root / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    folder = root / "app"
    shutil.copytree(ROOT / "examples", folder / "examples", ignore=skip)
    made = run([sys.executable, "-m", "venv", str(root / "venv")], root, environment(), timeout=120)
    assert made.returncode == 0, made.stderr
    venv = Fresh(root / "venv" / "bin", folder)
    installed = run([str(venv.bin / "pip"), "install", "--quiet", str(source)], root, venv.env(), timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.mark.slow
def test_the_core_installs_none_of_the_extras_packages_and_runs_from_the_venv(fresh: Fresh) -> None:
    code = "import importlib.util, citadel; print(citadel.__file__)\n"
    code += f"print([name for name in {(*PACKAGES, 'opentelemetry.sdk')!r} if importlib.util.find_spec(name)])"
    location, found = python_in(fresh, code).splitlines()
    assert Path(location).is_relative_to(fresh.bin.parent)
    assert found == "[]"


@pytest.mark.slow
def test_the_core_runs_the_readmes_bank_example(fresh: Fresh) -> None:
    assert python_in(fresh, "-m", "examples.quickstart.bank") == "{'owner': 'ada', 'balance': 250}"


@pytest.mark.slow
def test_the_core_serves_the_shop_on_sqlite_and_takes_a_command_over_http(fresh: Fresh) -> None:
    port = free_port()
    log = fresh.folder / "serve.log"
    command = [str(fresh.bin / "citadel"), "serve", "examples.shop:app", "--dev", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=fresh.folder, env=fresh.env(), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        assert ready(process, url), log.read_text()
        registered = httpx.post(f"{url}/users/register-user", json={"email": "ada@example.com", "name": "Ada"})
        assert registered.status_code == 200, registered.text
        assert registered.headers["citadel-position"] == "1"
        assert set(registered.json()) == {"user_id"}
    finally:
        stop(process)


@pytest.mark.slow
def test_the_core_refuses_to_serve_with_granian_naming_the_extra(fresh: Fresh) -> None:
    command = [str(fresh.bin / "citadel"), "serve", "examples.shop:app", "--dev", "--port", str(free_port())]
    done = run([*command, "--server", "granian"], fresh.folder, fresh.env())
    assert done.returncode == 2, done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {fix('serving with granian', 'granian')}"
    ]
    assert "Traceback" not in done.stderr


def python_in(fresh: Fresh, *arguments: str) -> str:
    """What the fresh environment's Python prints for ``-c CODE`` or ``-m MODULE`` (in the examples' folder)."""
    command = [str(fresh.bin / "python"), *(arguments if len(arguments) > 1 else ("-c", *arguments))]
    done = run(command, fresh.folder, fresh.env())
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def ready(process: subprocess.Popen[bytes], url: str, timeout: float = 30) -> bool:
    """Whether the server answers ``/ready`` with 200 within ``timeout`` seconds (False once it has exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/ready").status_code == 200:
                return True
        time.sleep(0.1)
    return False
