"""gunicorn's HTTP/1.1 request corpus, loaded as conformance cases (``tests/http/conformance.py`` runs them).

The corpus is ``tests/requests`` of gunicorn's sdist (``make test`` fetches it into ``.venv/corpus``): each
``valid/NAME.http`` holds raw bytes and ``NAME.py`` the request(s) gunicorn parses from them; each
``invalid/NAME.http`` holds bytes gunicorn refuses, its ``.py`` naming the exception. Either may change gunicorn
settings (``cfg``). The files are read with gunicorn's own loader (the sdist's ``tests/treq.py``), so their escapes
mean what they mean to gunicorn.

Each case records which gunicorn settings its expectation hinges on. gunicorn's request-line and header-count
limits have equivalents elsewhere (``MAPPED_LIMITS``): a server that can be set to them is run with the values
gunicorn applies to the case, its settings or else gunicorn's defaults. Any other setting (``GUNICORN_ONLY``, or
one this module does not know yet) makes the case not applicable.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

GUNICORN_VERSION = "27.0.1"
CORPUS = (
    Path(__file__).resolve().parents[2] / ".venv" / "corpus" / f"gunicorn-{GUNICORN_VERSION}" / "tests" / "requests"
)
MAPPED_LIMITS = frozenset({"limit_request_line", "limit_request_fields"})
GUNICORN_ONLY = {
    "permit_obsolete_folding": "gunicorn's permit_obsolete_folding (unfolds obsolete line folding)",
    "strip_header_spaces": "gunicorn's strip_header_spaces (accepts spaces before a header's colon)",
    "permit_unconventional_http_method": "gunicorn's permit_unconventional_http_method",
    "casefold_http_method": "gunicorn's casefold_http_method",
    "header_map": "gunicorn's header_map ('_' in header names, a WSGI environ concern)",
    "proxy_protocol": "gunicorn's proxy_protocol (the PROXY protocol before the request)",
    "forwarded_allow_ips": "gunicorn's forwarded_allow_ips (checks of X-Forwarded-* headers)",
    "limit_request_field_size": "gunicorn's per-field size limit (the server bounds the whole header block)",
}


@dataclass(frozen=True)
class Expected:
    """One request as the app must see it (header names lowercased)."""

    method: str
    raw_path: str
    query_string: str
    http_version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class CaseLimits:
    """gunicorn's request-line (0: none) and header-count limits in force for a case."""

    request_line: int
    headers: int


@dataclass(frozen=True)
class Case:
    name: str
    """``valid/NAME`` or ``invalid/NAME``."""
    raw: bytes
    requests: tuple[Expected, ...]
    """What the app must see (valid cases only)."""
    refused: bool
    accepted_before: int
    """Requests gunicorn accepts on the connection before the one it refuses (invalid cases)."""
    limits: CaseLimits
    needs: frozenset[str]
    """The mapped limits an invalid case's refusal hinges on."""
    gunicorn_only: str
    """Why the expectation holds for gunicorn alone; empty when it can hold for any server."""


def load_cases(corpus: Path = CORPUS) -> dict[str, Case]:
    """Every case of the corpus by name.

    Raises:
        FileNotFoundError: the corpus is not there (``make test`` fetches it).
        RuntimeError: the installed gunicorn is not the corpus's version (its .py files import gunicorn).
    """
    if not (corpus / "valid").is_dir():
        raise FileNotFoundError(f"gunicorn's request corpus is not at {corpus}: run `make test`, which fetches it")
    try:
        installed = importlib.metadata.version("gunicorn")
    except importlib.metadata.PackageNotFoundError:
        installed = "(none)"
    if installed != GUNICORN_VERSION:
        raise RuntimeError(f"the corpus needs gunicorn {GUNICORN_VERSION}, {installed} is installed: run `make test`")
    spec = importlib.util.spec_from_file_location("gunicorn_treq", corpus.parent / "treq.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"gunicorn's test loader is not at {corpus.parent / 'treq.py'}")
    treq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(treq)
    cases = {}
    for kind in ("valid", "invalid"):
        for path in sorted((corpus / kind).glob("*.http")):
            case = _load(treq, kind, path)
            cases[case.name] = case
    return cases


def _load(treq: ModuleType, kind: str, path: Path) -> Case:
    from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine

    env = treq.load_py(str(path.with_suffix(".py")))
    cfg = env["cfg"]
    limits = _limits(cfg)
    raw: bytes = treq.badrequest(str(path)).data
    fields = _first_head_fields(raw)
    reasons = [
        GUNICORN_ONLY.get(name, f"gunicorn's {name}") for name in _changed_settings(cfg) if name not in MAPPED_LIMITS
    ]
    if cfg.header_map == "drop" and any(b"_" in line.partition(b":")[0] for line in fields):
        reasons.append("gunicorn's header_map='drop' (drops header names with '_'; ASGI passes them as sent)")
    needs: set[str] = set()
    requests: tuple[Expected, ...] = ()
    if kind == "valid":
        expect = env["request"]
        requests = tuple(_expected(request) for request in (expect if isinstance(expect, list) else [expect]))
    elif env["request"] is LimitRequestLine:
        needs.add("limit_request_line")
    elif env["request"] is LimitRequestHeaders:
        if len(fields) > limits.headers:
            needs.add("limit_request_fields")
        else:
            reasons.append(GUNICORN_ONLY["limit_request_field_size"])
    return Case(
        name=f"{kind}/{path.stem}",
        raw=raw,
        requests=requests,
        refused=kind == "invalid",
        accepted_before=_accepted_before(cfg, raw) if kind == "invalid" else 0,
        limits=limits,
        needs=frozenset(needs),
        gunicorn_only="; ".join(dict.fromkeys(reasons)),
    )


def _changed_settings(cfg: Any) -> list[str]:
    from gunicorn.config import Config

    defaults = Config().settings
    return [
        name
        for name, setting in cfg.settings.items()
        if name != "http_parser" and setting.get() != defaults[name].get()
    ]


def _limits(cfg: Any) -> CaseLimits:
    """The limits gunicorn's parser applies: a request line of at most 8190 bytes, at most 32768 headers."""
    from gunicorn.http.message import MAX_HEADERS, MAX_REQUEST_LINE

    line = min(cfg.limit_request_line, MAX_REQUEST_LINE)
    fields = cfg.limit_request_fields
    return CaseLimits(request_line=max(line, 0), headers=fields if 0 < fields <= MAX_HEADERS else MAX_HEADERS)


def _first_head_fields(raw: bytes) -> list[bytes]:
    head = raw.lstrip(b"\r\n").partition(b"\r\n\r\n")[0]
    return [line for line in head.split(b"\r\n")[1:] if line[:1] not in (b" ", b"\t")]


def _expected(request: Mapping[str, Any]) -> Expected:
    uri = request["uri"]
    if uri["raw"].startswith("/") or "://" in uri["raw"]:
        raw_path, query = uri["path"], uri["query"]
    else:  # the asterisk and authority forms have no path to split
        raw_path, query = uri["raw"], ""
    body = request["body"]
    return Expected(
        method=request["method"],
        raw_path=raw_path,
        query_string=query,
        http_version=".".join(map(str, request["version"])),
        headers=tuple((name.lower(), value) for name, value in request["headers"]),
        body=body.encode("latin-1") if isinstance(body, str) else body,
    )


def _accepted_before(cfg: Any, raw: bytes) -> int:
    """How many requests gunicorn's parser reads whole from ``raw`` before it raises."""
    from gunicorn.http.parser import RequestParser

    count = 0
    with contextlib.suppress(Exception):
        for request in RequestParser(cfg, iter([raw]), None):
            request.body.read()
            count += 1
    return count
