"""Files that hold secrets and keys: created by their owner alone, refused when others may read them.

A new file is written whole under a temporary name opened with ``O_CREAT | O_EXCL`` and mode 0600, then
linked into place (which fails when the name exists), so that processes starting at once agree on one file and
none reads a half-written one. Folders it creates get mode 0700. A file found with any permission for its
group or others is refused: a key the whole machine can read is no secret.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from citadel.errors import ConfigurationError

__all__ = ["create_private", "keys_document", "make_private_folder", "read_keys", "read_private"]

_OTHERS = 0o077


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700 (existing ones are left as they are)."""
    missing = []
    for each in (folder, *folder.parents):
        if each.exists():
            break
        missing.append(each)
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(each, 0o700)


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, which must not exist (``FileExistsError`` otherwise), readable by its owner only."""
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def create_private(path: Path, text: str) -> bool:
    """Write ``text`` to the new file ``path`` (mode 0600, its folder created with mode 0700 when missing).

    Returns False, writing nothing, when ``path`` exists already (another process may have just made it: its
    content wins).
    """
    make_private_folder(path.parent)
    if path.exists():
        return False
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_new(temporary, text.encode())
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: create the file itself, exclusively
        try:
            _write_new(path, text.encode())
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def read_private(path: Path, what: str) -> str:
    """The text of the secret file ``path`` (``what`` names it in errors).

    Raises:
        ConfigurationError: the file is missing or unreadable, or its group or others have any permission on it.
    """
    try:
        mode = path.stat().st_mode & 0o777
        if mode & _OTHERS:
            raise ConfigurationError(
                f"the {what} file {path} is open to other users (mode {mode:o}): run `chmod 600 {path}`"
            )
        return path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from exc


def read_keys(path: Path, what: str) -> tuple[str, dict[str, bytes]]:
    """The current key id and every key of the private key file ``path``: ``{"current": id, "keys": {id: base64}}``,
    the format of master and service key files (``what`` names it in errors).

    Raises:
        ConfigurationError: the file is missing, unreadable, open to other users, or not that document.
    """
    text = read_private(path, what)
    try:
        document = json.loads(text)
        keys = {k: base64.b64decode(v, validate=True) for k, v in document["keys"].items()}
        current = document["current"]
        if current not in keys:
            raise KeyError(current)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise ConfigurationError(f"cannot read the {what} file {path}: {exc!r}") from exc
    return current, keys


def keys_document(current: str, keys: Mapping[str, bytes]) -> str:
    """The text of a key file holding ``keys``, of which ``current`` is the one in use (see ``read_keys``)."""
    encoded = {k: base64.b64encode(v).decode() for k, v in keys.items()}
    return json.dumps({"current": current, "keys": encoded}, indent=2) + "\n"
