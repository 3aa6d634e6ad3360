"""The client side of a first connection to NATS: it fails fast and says why (see ``citadel.messaging.connection``
for the settings). Imported when a broker connects, as it needs the ``nats`` extra."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client
from nats.errors import Error as NatsError

from citadel.errors import ConfigurationError, ServiceUnavailable

if TYPE_CHECKING:
    from citadel.messaging.connection import BrokerConnection

__all__ = ["open_connection"]

log = logging.getLogger("citadel.nats")


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
