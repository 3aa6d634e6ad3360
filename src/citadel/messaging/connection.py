"""How a service connects to NATS: its credentials, TLS, and a first connection that fails fast and says why.

What NATS users expect, each a ``nats-py`` connect option underneath (see ``BrokerConnection.options``):

* a user and password, or a token, in the broker URL (``nats://billing:s3cret@host:4222/shop``,
  ``nats://s3cret@host:4222``; percent-encode ``@ : /`` in them). They leave the URL as soon as it is read,
  so the URL a broker keeps, logs and shows carries none (``masked`` hides them in any other URL);
* an NKEY seed file, or a ``.creds`` file (a user JWT and its seed) that an operator issued;
* TLS, required by a ``tls://`` URL or by any of the CA, client certificate and key settings: TLS 1.2 at
  least, the server's certificate verified against the CA (the system's CAs without one), and its name or
  address checked. A server that does not require TLS then gets nothing: the client refuses before it sends
  ``CONNECT`` (the credentials), so a man in the middle cannot strip TLS off to read them.

Every file is checked when a ``BrokerConnection`` is built: missing, unreadable or of the wrong format, or (a
seed, a ``.creds`` file or a private key) open to the group or others, it raises ``ConfigurationError`` naming
the setting and the fix. A first connection that NATS refuses (credentials, certificate) fails at once; one
that cannot reach NATS fails after the timeout. Once connected, the client reconnects forever, and every error
NATS reports afterwards (a permissions violation, say) is logged on ``citadel.nats``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import importlib
import logging
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote

from nats.aio.client import Client
from nats.errors import Error as NatsError

from citadel.errors import ConfigurationError, ServiceUnavailable
from citadel.security.keyfiles import read_private

__all__ = ["BrokerConnection", "masked", "open_connection"]

log = logging.getLogger("citadel.nats")
_SCHEMES = ("nats", "tls")
_INBOX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_CREDS = re.compile(
    r"-----BEGIN NATS USER JWT-----\s*\n\s*(?P<jwt>[A-Za-z0-9_=.-]+)\s*\n.*?"
    r"-----BEGIN USER NKEY SEED-----\s*\n\s*(?P<seed>\S+)\s*\n",
    re.DOTALL,
)


@dataclass(frozen=True, kw_only=True)
class BrokerConnection:
    """How to authenticate to NATS and secure the connection. Checks every file when built.

    Raises:
        ConfigurationError: a file is missing, unreadable, of the wrong format or open to others; or the
            settings contradict each other (the message names the setting and the fix).
    """

    creds_file: Path | None = None
    """A ``.creds`` file: the user JWT and NKEY seed an operator issued (``broker_creds_file``)."""
    nkey_seed_file: Path | None = None
    """A user NKEY seed (``SU...``) for servers that list the user's public key (``broker_nkey_seed_file``)."""
    tls_ca: Path | None = None
    """PEM CA certificates the server's certificate must chain to (``broker_tls_ca``)."""
    tls_cert: Path | None = None
    """PEM client certificate, for servers that verify clients (``broker_tls_cert``); needs ``tls_key``."""
    tls_key: Path | None = None
    """The client certificate's unencrypted PEM private key (``broker_tls_key``)."""
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    inbox_prefix: str = "_INBOX"
    """Where replies come back: a prefix of a service's own lets its NATS user subscribe to its replies alone."""
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.creds_file and self.nkey_seed_file:
            raise ConfigurationError(
                "set broker_creds_file or broker_nkey_seed_file, not both: a .creds file has a seed"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigurationError(
                "a NATS client certificate needs its key: set both broker_tls_cert and broker_tls_key"
            )
        if (self.user is not None or self.token is not None) and (self.creds_file or self.nkey_seed_file):
            raise ConfigurationError(
                "the broker URL has a user or token and broker_creds_file or broker_nkey_seed_file is set: "
                "authenticate one way (take the credentials out of the URL, or unset the file)"
            )
        if not _INBOX.fullmatch(self.inbox_prefix):
            raise ConfigurationError(
                f"the inbox prefix {self.inbox_prefix!r} must be NATS subject tokens, no wildcards"
            )
        if self.creds_file:
            _check_seed(_creds_seed(self.creds_file), "broker_creds_file", self.creds_file)
        if self.nkey_seed_file:
            _check_seed(read_secret(self.nkey_seed_file, "broker_nkey_seed_file", "NKEY seed"), "broker_nkey_seed_file")
        if self.tls:
            object.__setattr__(self, "_context", self._ssl_context())

    @classmethod
    def from_files(
        cls,
        *,
        creds_file: str | None = None,
        nkey_seed_file: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        inbox_prefix: str = "_INBOX",
    ) -> BrokerConnection:
        """The connection the ``broker_*`` settings describe (None or empty: not set); see the class for errors."""

        def path(value: str | None) -> Path | None:
            return Path(value) if value else None

        return cls(
            creds_file=path(creds_file),
            nkey_seed_file=path(nkey_seed_file),
            tls_ca=path(tls_ca),
            tls_cert=path(tls_cert),
            tls_key=path(tls_key),
            inbox_prefix=inbox_prefix,
        )

    @property
    def tls(self) -> bool:
        """Whether a TLS setting is given (which makes TLS required, whatever the URL's scheme)."""
        return bool(self.tls_ca or self.tls_cert)

    def for_url(self, url: str) -> tuple[str, BrokerConnection]:
        """Return ``url`` without its user, password or token, and this connection with them.

        Raises:
            ConfigurationError: the scheme is not ``nats://`` or ``tls://``, or the credentials are empty or
                come on top of a creds or seed file.
        """
        scheme, _, rest = url.partition("://")
        if scheme not in _SCHEMES:
            raise ConfigurationError(f"the broker URL {masked(url)} must start with nats:// or tls://")
        netloc, slash, path = rest.partition("/")
        userinfo, at, host = netloc.rpartition("@")
        if not at:
            return url, self
        name, colon, secret = userinfo.partition(":")
        if not name:
            raise ConfigurationError(f"the broker URL {masked(url)} has an empty user or token before '@'")
        bare = f"{scheme}://{host}{slash}{path}"
        if colon:
            return bare, dataclasses.replace(self, user=unquote(name), password=unquote(secret))
        return bare, dataclasses.replace(self, token=unquote(name))

    def requires_tls(self, url: str) -> bool:
        """Whether connecting to ``url`` must be over TLS: a ``tls://`` URL, or any TLS setting."""
        return self.tls or url.startswith("tls://")

    def options(self, *, tls: bool) -> dict[str, Any]:
        """The ``nats.connect`` keyword arguments for these settings (``tls``: a TLS context goes along)."""
        options: dict[str, Any] = {"inbox_prefix": self.inbox_prefix}
        if tls:
            options["tls"] = self._context or self._ssl_context()
        if self.user is not None:
            options |= {"user": self.user, "password": self.password or ""}
        if self.token is not None:
            options["token"] = self.token
        if self.creds_file:
            options["user_credentials"] = str(self.creds_file)
        if self.nkey_seed_file:
            options["nkeys_seed"] = str(self.nkey_seed_file)
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later, the server's certificate verified (against ``tls_ca``, else the system's CAs)
        and its name or address checked; the client certificate when given."""
        cafile = str(_readable(self.tls_ca, "broker_tls_ca")) if self.tls_ca else None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        except ssl.SSLError as exc:
            raise ConfigurationError(
                f"broker_tls_ca: {self.tls_ca} holds no PEM CA certificate ({exc.reason}): give the CA that signed "
                "the NATS server's certificate"
            ) from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if self.tls_cert and self.tls_key:
            cert = _readable(self.tls_cert, "broker_tls_cert")
            read_secret(self.tls_key, "broker_tls_key", "TLS private key")

            def encrypted() -> NoReturn:
                raise ConfigurationError(f"broker_tls_key: {self.tls_key} is encrypted; give an unencrypted PEM key")

            try:
                context.load_cert_chain(cert, self.tls_key, password=encrypted)
            except ssl.SSLError as exc:
                raise ConfigurationError(
                    f"broker_tls_cert and broker_tls_key: {cert} and {self.tls_key} are not a PEM certificate and "
                    f"the unencrypted key that belongs to it ({exc.reason})"
                ) from exc
        return context


def masked(url: str) -> str:
    """``url`` with its password (or its token) replaced by ``***``, fit to print or log."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return url
    name, colon, _ = userinfo.partition(":")
    shown = f"{name}:***" if colon else "***"
    return f"{scheme}{sep}{shown}@{host}{slash}{path}"


def read_secret(path: Path, setting: str, what: str) -> str:
    """The text of the secret file ``path`` that ``setting`` names.

    Raises:
        ConfigurationError: it is missing or unreadable, or its group or others have any permission on it.
    """
    try:
        return read_private(path, what)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{setting}: {exc}") from exc


def _readable(path: Path, setting: str) -> Path:
    try:
        with path.open("rb"):
            return path
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc.strerror or exc}; check the path") from exc


def _creds_seed(path: Path) -> str:
    """The user seed of the ``.creds`` file ``path``, after checking that it has a user JWT too."""
    match = _CREDS.search(read_secret(path, "broker_creds_file", "NATS credentials"))
    if match is None:
        raise ConfigurationError(
            f"broker_creds_file: {path} is not a NATS .creds file (a USER JWT block, then a USER NKEY SEED block): "
            "give the file `nsc generate creds` wrote"
        )
    return match["seed"]


def _check_seed(text: str, setting: str, source: Path | None = None) -> None:
    """Raise unless ``text`` is a user NKEY seed (``SU...``, its checksum right) and ``nkeys`` is installed."""
    seed = text.strip()
    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    except (binascii.Error, ValueError):
        raw = b""
    try:
        nkeys = importlib.import_module("nkeys")
    except ImportError as exc:
        raise ConfigurationError(f"{setting} needs the nkeys package: pip install nkeys") from exc
    if not seed.startswith("SU") or len(raw) != 36 or bytes(nkeys.crc16_checksum(raw[:-2])) != raw[-2:]:
        where = f" in {source}" if source else ""
        raise ConfigurationError(
            f"{setting}: the seed{where} is not a NATS user NKEY seed (one line starting SU): give the seed of "
            "the user the server lists (`nk -gen user`, or `nsc`)"
        )


class _TlsOnlyClient(Client):
    """A client that sends nothing (no ``CONNECT``, so no credentials) to a server that does not require TLS,
    when this connection must be TLS. nats-py upgrades to TLS only when the server's ``INFO`` asks for it."""

    def __init__(self, tls: bool) -> None:
        super().__init__()
        self._tls_only = tls

    def _connect_command(self) -> bytes:
        if self._tls_only and not self._server_info.get("tls_required"):
            raise _NoTls("nats: the server does not require TLS")
        return super()._connect_command()


class _NoTls(NatsError):
    """The server offered a connection without TLS where TLS is required (a nats-py error, so that a reconnect
    that meets it tries again later rather than giving up)."""


class _FirstConnection:
    """Collects what goes wrong while connecting for the first time; logs what NATS reports afterwards."""

    def __init__(self, url: str, client: Client) -> None:
        self.url, self.client = url, client
        self.opened = False
        self.errors: list[Exception] = []
        self.refusal: ConfigurationError | None = None
        self.refused = asyncio.Event()

    async def on_error(self, exc: Exception) -> None:
        if self.opened:  # what goes wrong while closing is no news
            log.log(logging.DEBUG if self.client.is_closed else logging.WARNING, "NATS at %s: %s", self.url, exc)
            return
        log.debug("connecting to NATS at %s: %r", self.url, exc)
        self.errors.append(exc)
        self.refusal = self.refusal or _refusal(self.url, exc)
        if self.refusal is not None:
            self.refused.set()

    def failure(self, timeout: float) -> Exception:
        if self.refusal is not None:
            return self.refusal
        last = f": {self.errors[-1]}" if self.errors else ""
        return ServiceUnavailable(f"cannot reach NATS at {self.url} within {timeout:g} s{last}")


def _refusal(url: str, exc: Exception) -> ConfigurationError | None:
    """The configuration error that ``exc`` shows, if retrying cannot help."""
    if isinstance(exc, _NoTls):
        return ConfigurationError(
            f"NATS at {url} does not require TLS, which tls:// or the broker_tls_* settings ask for; nothing was "
            "sent. Turn TLS on in the server's config (a tls block), or use nats:// without TLS settings"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigurationError(
            f"NATS at {url} presented a certificate that does not verify ({exc.verify_message}): set "
            "broker_tls_ca to the CA that signed it, and connect by a name or address the certificate lists"
        )
    if isinstance(exc, ssl.SSLError) and "ALERT" in (exc.reason or ""):  # the server's alert, not a closing race
        return ConfigurationError(
            f"the TLS handshake with NATS at {url} failed ({exc.reason}): if the server verifies clients, set "
            "broker_tls_cert and broker_tls_key to a certificate its CA signed"
        )
    text = str(exc).lower()
    if any(refused in text for refused in ("authorization violation", "authentication expired", "revoked")):
        return ConfigurationError(
            f"NATS at {url} refused this service's credentials ({str(exc).removeprefix('nats: ')}): check the user "
            "and password or the token in the broker URL, or broker_creds_file or broker_nkey_seed_file, against "
            "the server's authorization"
        )
    return None


async def open_connection(url: str, connection: BrokerConnection, *, name: str, timeout: float) -> Client:
    """A connection to NATS at ``url`` (no credentials in it), that reconnects forever once open.

    Raises:
        ConfigurationError: NATS refused the credentials or the client certificate, its certificate does not
            verify, or it does not require TLS where this connection does.
        ServiceUnavailable: NATS could not be reached within ``timeout`` seconds.
    """
    tls = connection.requires_tls(url)
    client = _TlsOnlyClient(tls)
    first = _FirstConnection(url, client)
    options: dict[str, Any] = {
        "error_cb": first.on_error,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
    }
    connecting = asyncio.ensure_future(client.connect(url, **options, **connection.options(tls=tls)))
    refused = asyncio.ensure_future(first.refused.wait())
    try:
        await asyncio.wait({connecting, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if connecting.done() and not connecting.cancelled():
            error = connecting.exception()
            if error is None:
                first.opened = True
                return client
            await first.on_error(error if isinstance(error, Exception) else Exception(error))
        raise first.failure(timeout)
    except BaseException:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
        with contextlib.suppress(Exception):
            await client.close()
        raise
    finally:
        refused.cancel()
