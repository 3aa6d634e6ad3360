"""NATS identities made at test time with the ``nkeys`` package: NKEY pairs, an operator that issues an account
and a user (the JWTs ``nsc`` would write, and the user's ``.creds`` file), and the permissions of one service's
NATS user: what it may publish and subscribe to, and nothing else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys


@dataclass(frozen=True)
class Nkey:
    """An NKEY pair: the seed (secret) and the public key the server lists."""

    seed: str
    public: str

    @classmethod
    def generate(cls, prefix: int = nkeys.PREFIX_BYTE_USER) -> Nkey:
        seed = nkeys.encode_seed(secrets.token_bytes(32), prefix)
        return cls(seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        return bytes(nkeys.from_seed(bytearray(self.seed.encode())).sign(data))


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to the new file ``path``, readable by its owner only (as a secret must be)."""
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(issuer: Nkey, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (``ed25519-nkey``) about ``subject``, signed by ``issuer``."""
    claims: dict[str, Any] = {"jti": "", "iat": int(time.time()), "iss": issuer.public, "name": name, "sub": subject}
    claims["nats"] = {**nats, "version": 2}
    claims["jti"] = base64.b32encode(hashlib.sha512(json.dumps(claims).encode()).digest()[:32]).decode().rstrip("=")
    signing_input = (
        f"{_b64(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


_UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1}
_JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


@dataclass(frozen=True)
class Operator:
    """Decentralized auth: an operator JWT, the accounts it issued (one with JetStream, and a system account),
    and one user of that account, whose ``.creds`` file is all a client needs."""

    config: str
    creds: str

    @classmethod
    def issue(cls, user_name: str = "billing") -> Operator:
        operator, account, system, user = (
            Nkey.generate(nkeys.PREFIX_BYTE_OPERATOR),
            Nkey.generate(nkeys.PREFIX_BYTE_ACCOUNT),
            Nkey.generate(nkeys.PREFIX_BYTE_ACCOUNT),
            Nkey.generate(),
        )
        accounts = {
            account.public: _jwt(
                operator, account.public, "SHOP", {"type": "account", "limits": _UNLIMITED | _JETSTREAM}
            ),
            system.public: _jwt(operator, system.public, "SYS", {"type": "account", "limits": _UNLIMITED}),
        }
        preload = "\n".join(f"  {key}: {token}" for key, token in accounts.items())
        config = (
            f"operator: {_jwt(operator, operator.public, 'citadel-tests', {'type': 'operator'})}\n"
            f"system_account: {system.public}\nresolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
        )
        user_jwt = _jwt(
            account,
            user.public,
            user_name,
            {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
        )
        creds = (
            f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n"
        )
        return cls(config, creds)


def service_permissions(
    namespace: str, modules: Sequence[str], calls: Sequence[str], *, inbox: str = "_INBOX"
) -> dict[str, Any]:
    """What the NATS user of the service that runs ``modules`` (and sends commands and queries to, or imports
    the events of, the modules ``calls``) may do on the application ``namespace``; nothing else.

    * publish: its own modules' events, requests to the modules it calls and "published?" questions to them;
      on JetStream: create or update the events stream (every service does at start) and read its info, and
      its own inbox consumer: create it, read its info, fetch from it, acknowledge, and read one message back
      (a dead letter retried);
    * subscribe: requests for its own modules, "published?" questions about them, and its replies;
    * reply to the requests it received (``allow_responses``), and to no other subject.
    """
    stream = namespace.upper().replace("-", "_") + "_EVENTS"
    durable = "citadel-inbox-" + "+".join(sorted(modules))  # the service's inbox consumer
    publish = [f"{namespace}.events.{m}.>" for m in modules]
    publish += [f"{namespace}.rpc.{m}.>" for m in calls] + [f"{namespace}.published.{m}" for m in calls]
    publish += [f"$JS.API.STREAM.{action}.{stream}" for action in ("CREATE", "UPDATE", "INFO", "MSG.GET")]
    publish += [f"$JS.API.CONSUMER.{action}.{stream}.{durable}" for action in ("DURABLE.CREATE", "INFO", "MSG.NEXT")]
    publish += [f"$JS.ACK.{stream}.{durable}.>"]
    subscribe = [f"{namespace}.rpc.{m}.>" for m in modules] + [f"{namespace}.published.{m}" for m in modules]
    subscribe += [f"{inbox}.>"]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}, "allow_responses": True}


def nats_conf(value: Any, indent: int = 0) -> str:
    """``value`` in nats-server's configuration syntax (JSON-like; strings quoted)."""
    pad = "  " * indent
    if isinstance(value, dict):
        inner = "\n".join(f"{pad}  {key}: {nats_conf(item, indent + 1)}" for key, item in value.items())
        return f"{{\n{inner}\n{pad}}}"
    if isinstance(value, list):
        inner = "\n".join(f"{pad}  {nats_conf(item, indent + 1)}" for item in value)
        return f"[\n{inner}\n{pad}]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)
