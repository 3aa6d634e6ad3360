"""Commands for credentials: development tokens, and the master keys of encryption at rest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from citadel.app import Application
from citadel.cli.common import AppArg, StoreOpt, application_of, fail, out, run_with, settings_of
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
) -> None:
    """Print a signed development token (HS256, with the server's secret) for ``Authorization: Bearer``."""
    from citadel.security.identity import issue_token, load_or_create_secret
    from citadel.setup import token_secret

    if not subject:
        fail("give the token a subject: --subject USER_ID")
    settings = settings_of(app) if app else _any_settings()
    try:
        uses_file = not (settings.auth_secret or settings.auth_public_key_file or settings.auth_jwks_file)
        if uses_file and settings.auth_secret_file:  # the server would create it on its first start
            load_or_create_secret(Path(settings.auth_secret_file))
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
            ttl=_duration(ttl),
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    )


def _any_settings() -> Settings:
    try:
        return load_settings()
    except CitadelError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


def keys_generate(
    path: Annotated[str, typer.Argument(help="where to write the key file")] = "var/citadel-master-keys.json",
) -> None:
    """Write a new master key file (refuses to overwrite one: its keys unwrap your data keys)."""
    from citadel.security.encryption import MasterKeys

    target = Path(path)
    if target.exists():
        fail(f"{target} exists; its keys are needed to read your data. Rotate with `citadel keys rotate` instead")
    MasterKeys.generate().save(target)
    out.print(f"wrote a new master key to {target}; keep it secret, and out of the database's backups")


def keys_rotate(app: AppArg = None, store: StoreOpt = None) -> None:
    """Add a new current master key to the key file and re-wrap every data key with it (no event is rewritten)."""
    from citadel.security.encryption import MasterKeys

    settings = settings_of(app, store=store)
    if not settings.master_key_file:
        fail("rotation needs a key file (master_key_file); a key given in CITADEL_MASTER_KEY is rotated by you")
    path = Path(settings.master_key_file)
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
