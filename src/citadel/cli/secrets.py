"""Commands for credentials: development tokens, and the keys and secrets a deployment needs (master keys of
encryption at rest, the token secret, the service key)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from citadel.app import Application
from citadel.cli.common import AppArg, StoreOpt, application_of, err, fail, out, run_with, settings_of
from citadel.config import Settings, load_settings
from citadel.errors import CitadelError

__all__ = ["keys_generate", "keys_rotate", "token"]


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 366 * 86400):
        fail(f"--ttl {text!r} is not a duration like 90, 30m, 1h or 7d (more than 0, at most a year)")
    return seconds
    raise AssertionError("unreachable")


def token(
    app: AppArg = None,
    subject: Annotated[str, typer.Option(help="the subject (user id) the token speaks for")] = "",
    role: Annotated[list[str] | None, typer.Option(help="a role of the subject; repeat for several")] = None,
    ttl: Annotated[str, typer.Option(help="how long the token is valid: 90, 30m, 1h, 7d")] = "1h",
    dev: Annotated[
        bool, typer.Option("--dev", help="development mode: create the token secret when it is missing")
    ] = False,
) -> None:
    """Print a signed development token (HS256, with the server's secret) for the Authorization: Bearer header."""
    from citadel.security.identity import RESERVED_SUBJECTS, issue_token
    from citadel.setup import prepare_secret, token_secret

    if not subject:
        fail("give the token a subject: --subject USER_ID")
    if subject in RESERVED_SUBJECTS:
        fail(
            f"the subject {subject!r} is reserved for Citadel's own actors (servers refuse its tokens): "
            "choose another --subject"
        )
    seconds = _duration(ttl)
    settings = settings_of(app, dev=dev or None) if app else _any_settings(dev=dev or None)
    try:
        for warning in prepare_secret(settings):  # only in development mode
            err.print(f"warning: {warning}", highlight=False)
        secret = token_secret(settings)
    except CitadelError as exc:
        fail(str(exc))
    if secret is None:
        fail("tokens come from your identity provider (auth_public_key_file or auth_jwks_file is set)")
    print(
        issue_token(
            secret,
            subject,
            role or [],
            ttl=seconds,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    )


def _any_settings(**options: Any) -> Settings:
    try:
        return load_settings(**options)
    except CitadelError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


_KINDS = ("master", "secret", "service")


def keys_generate(
    path: Annotated[
        str | None,
        typer.Argument(
            help="where to write it (default: the setting's file: master_key_file, auth_secret_file or "
            "service_key_file)"
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="what to make: master (the master key of encryption at rest), secret (the HS256 token secret) "
            "or service (the key services sign their messages with; give every service the same file)"
        ),
    ] = "master",
) -> None:
    """Write a new master key, token secret or service key file, readable by its owner only (refuses to
    overwrite one: a master key unwraps your data keys)."""
    from citadel.messaging.signing import ServiceKeys
    from citadel.security.encryption import MasterKeys
    from citadel.security.keyfiles import create_private
    from citadel.setup import new_token_secret

    if kind not in _KINDS:
        fail(f"--kind {kind!r} is not one of {', '.join(_KINDS)}")
    if path is None:
        settings = _any_settings()
        path = {
            "master": settings.master_key_file,
            "secret": settings.auth_secret_file,
            "service": settings.service_key_file,
        }[kind]
        if not path:
            fail("give the file to write: citadel keys generate PATH")
    target = Path(path)
    if target.exists():
        if kind == "master":
            fail(f"{target} exists; its keys are needed to read your data. Rotate with `citadel keys rotate` instead")
        fail(f"{target} exists; remove it first if you mean to replace it (whatever it signed stops verifying)")
    makers: dict[str, Callable[[], bool]] = {
        "master": lambda: MasterKeys.generate().create(target),
        "secret": lambda: create_private(target, new_token_secret()),
        "service": lambda: ServiceKeys.generate().create(target),
    }
    try:
        created = makers[kind]()
    except (CitadelError, OSError) as exc:
        fail(f"cannot write {target}: {exc}")
    if not created:
        fail(f"{target} was created by another process meanwhile; it was left as it is")
    what = {"master": "master key", "secret": "token secret", "service": "service key"}[kind]
    out.print(f"wrote a new {what} to {target}; keep it secret, and out of the database's backups")


def keys_rotate(app: AppArg = None, store: StoreOpt = None) -> None:
    """Add a new current master key to the key file and re-wrap every data key with it (no event is rewritten)."""
    from citadel.security.encryption import MasterKeys

    settings = settings_of(app, store=store)
    if not settings.master_key_file:
        fail("rotation needs a key file (master_key_file); a key given in CITADEL_MASTER_KEY is rotated by you")
    path = Path(settings.master_key_file)
    if not path.exists():
        fail(
            f"no master key: {path} does not exist. Set master_key_file (CITADEL_MASTER_KEY_FILE) to the key file "
            "whose keys wrap the store's data keys: rotation adds a new key to that file"
        )
    try:
        rotated = MasterKeys.load(path).rotated()
    except CitadelError as exc:
        fail(str(exc))
    application = application_of(settings, existing_store=True)

    async def rewrap(application: Application) -> int:
        return await application.store.rewrap_keys(rotated)

    rotated.save(path)  # first: the file keeps the old keys too, so whatever happens next, nothing is lost
    changed = run_with(application, rewrap)
    out.print(f"rotated the master key to {rotated.current}; re-wrapped {changed} data key(s)")
