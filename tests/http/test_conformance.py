"""gunicorn's request corpus (``tests/http/corpus.py``) against Citadel's server, in this process, over TCP.

Each case runs on a server of its own, set to the gunicorn limits the case hinges on (``citadel_options``), with
an echo app that records what it saw. A case passes, or has the verdict ``ALLOWED`` records for it: a new corpus
or a change to the server that moves a verdict, either way, fails here until the list says why.
"""

from __future__ import annotations

import pytest

from citadel.http.server import HttpServer, bind
from tests.http.conformance import EchoApp, Outcome, Verdict, citadel_options, judge, send_case
from tests.http.corpus import CORPUS, Case, load_cases

MISSING = f"gunicorn's request corpus is not at {CORPUS}: run `make test`, which fetches it"
CASES = load_cases() if CORPUS.is_dir() else {}

# Verdicts other than "pass", each with the reason it is acceptable. A "fail" is never acceptable.
NA: Verdict = "not applicable"
DEVIATION: Verdict = "deviation"
ALLOWED: dict[str, Verdict] = {
    "valid/pp_01": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "valid/pp_02": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "valid/pp_03": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "valid/pp_04": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "valid/pp_05": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "invalid/pp_01": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "invalid/pp_02": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "invalid/pp_03": NA,  # gunicorn's proxy_protocol: Citadel's server does not speak the PROXY protocol
    "valid/028": NA,  # gunicorn's strip_header_spaces leniency (a space before the colon); Citadel's stays strict
    "valid/031compat": NA,  # gunicorn's permit_unconventional_http_method and casefold_http_method leniencies
    "valid/031compat2": NA,  # gunicorn's permit_unconventional_http_method leniency
    "valid/compat_obs_fold": NA,  # gunicorn's permit_obsolete_folding leniency; Citadel's server stays strict
    "valid/compat_obs_fold_huge": NA,  # gunicorn's permit_obsolete_folding leniency; Citadel's stays strict
    "invalid/013": NA,  # gunicorn's permit_obsolete_folding with a per-field size limit
    "valid/040": NA,  # gunicorn's header_map="drop" hides names with '_', a WSGI concern; ASGI keeps them apart
    "valid/040_compat": NA,  # gunicorn's header_map="dangerous" ('_' in header names, a WSGI concern)
    "invalid/040": NA,  # gunicorn's header_map="refuse" ('_' in header names, a WSGI concern)
    "invalid/chunked_07": NA,  # gunicorn's header_map="refuse" ('_' in header names, a WSGI concern)
    "valid/024": NA,  # an 8204-byte field under a raised per-field limit; Citadel bounds the header block
    "valid/026": NA,  # an 8204-byte field under a raised per-field limit; Citadel bounds the header block
    "invalid/007": NA,  # an 8203-byte field over gunicorn's per-field limit; Citadel bounds the header block
    "invalid/008": NA,  # 8189-byte fields over gunicorn's per-field limit; Citadel bounds the header block
    "invalid/010": NA,  # gunicorn's per-field limit set to 10 bytes; Citadel bounds the header block
    "invalid/012": NA,  # gunicorn's per-field limit set to 98 bytes; Citadel bounds the header block
    "invalid/017": NA,  # an 8189-byte field over gunicorn's per-field limit; Citadel bounds the header block
    "invalid/limit_header_default_01": NA,  # an 8190-byte field over gunicorn's per-field limit
    "invalid/019": NA,  # gunicorn's forwarded_allow_ips="*": Citadel trusts no proxy here, reads no X-Forwarded-Ssl
    "valid/013": DEVIATION,  # spaces around ';' in chunk extensions (RFC 9112's BWS), which llhttp refuses
    "valid/031": DEVIATION,  # the method "-BLARGH", which is not one llhttp knows
    "valid/099": DEVIATION,  # 8599 of 17914 declared body bytes: gunicorn's harness ends a body at end of input
    "valid/rfc9112_target_authority_connect_01": DEVIATION,  # CONNECT: the server is no proxy
    "valid/rfc9112_target_authority_ipv6_01": DEVIATION,  # CONNECT: the server is no proxy
}


async def verdict_of(case: Case) -> Outcome:
    app = EchoApp()
    sock = bind("127.0.0.1", 0)
    try:
        server = HttpServer(app, **citadel_options(case.limits))
        await server.start(sock)
        try:
            reply = await send_case(case, "127.0.0.1", sock.getsockname()[1])
        finally:
            await server.stop()
    finally:
        sock.close()
    return judge(case, reply, seen=app.seen)


@pytest.mark.parametrize("name", sorted(CASES) or ["(corpus missing)"])
async def test_each_case_of_the_corpus_gets_the_verdict_on_record(name: str) -> None:
    case = CASES.get(name)
    if case is None:
        pytest.fail(MISSING)
    outcome = await verdict_of(case)
    expected = ALLOWED.get(name, "pass")
    assert outcome.verdict == expected, f"{name}: {outcome.verdict} ({outcome.reason}); on record: {expected}"


def test_the_allow_list_names_only_cases_of_the_corpus() -> None:
    if not CASES:
        pytest.fail(MISSING)
    assert sorted(set(ALLOWED) - set(CASES)) == []


def test_the_allow_list_never_accepts_a_failure() -> None:
    assert {name: verdict for name, verdict in ALLOWED.items() if verdict not in ("deviation", "not applicable")} == {}
