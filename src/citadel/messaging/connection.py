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
NATS reports afterwards (a permissions violation, say) is logged on ``citadel.nats``
(``citadel.messaging.nats_client``, which needs the ``nats`` extra).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote

from citadel.errors import ConfigurationError
from citadel.extras import require
from citadel.security.keyfiles import read_private

__all__ = ["BrokerConnection", "masked"]

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
    stream_replicas: int | None = None
    """Copies of the events stream in a NATS cluster (``broker_stream_replicas``, 1 to 5); None: one for a new
    stream, and an existing stream keeps its own count."""
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
        if self.stream_replicas is not None and not 1 <= self.stream_replicas <= 5:
            raise ConfigurationError(
                f"broker_stream_replicas is {self.stream_replicas}; JetStream keeps 1 to 5 copies of a stream"
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
        stream_replicas: int | None = None,
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
            stream_replicas=stream_replicas,
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
    nkeys = require("nkeys", "nats", setting)
    if not seed.startswith("SU") or len(raw) != 36 or bytes(nkeys.crc16_checksum(raw[:-2])) != raw[-2:]:
        where = f" in {source}" if source else ""
        raise ConfigurationError(
            f"{setting}: the seed{where} is not a NATS user NKEY seed (one line starting SU): give the seed of "
            "the user the server lists (`nk -gen user`, or `nsc`)"
        )
