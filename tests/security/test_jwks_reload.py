"""A JWKS file is read again when it changes (the identity provider rotated its keys), at most once a second; a
file that cannot be read keeps the keys already loaded."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import citadel.security.identity as identity
from citadel import Unauthenticated
from citadel.security import TokenVerifier


class Provider:
    """An identity provider's signing keys, published as a JWKS file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, rsa.RSAPrivateKey] = {}

    def add(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.publish()

    def remove(self, kid: str) -> None:
        del self.keys[kid]
        self.publish()

    def publish(self) -> None:
        published = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            published.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        self.path.write_text(json.dumps({"keys": published}))

    def token(self, kid: str, subject: str = "ada") -> str:
        claims = {"sub": subject, "iss": "citadel", "aud": "citadel", "exp": int(time.time()) + 60}
        pem = self.keys[kid].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    provider = Provider(tmp_path / "jwks.json")
    provider.add("k1")
    return provider


@pytest.fixture
def verifier(provider: Provider) -> TokenVerifier:
    """A verifier of the provider's tokens that looks at the file on every verification."""
    verifier = TokenVerifier.from_files(jwks_file=provider.path)
    verifier.JWKS_RELOAD = 0.0
    return verifier


def test_a_key_added_to_the_file_verifies_tokens_without_a_restart(provider: Provider, verifier: TokenVerifier) -> None:
    provider.add("k2")

    assert verifier.verify(provider.token("k2")).subject == "ada"
    assert verifier.verify(provider.token("k1")).subject == "ada"


def test_a_key_removed_from_the_file_is_refused_even_for_a_token_verified_before(
    provider: Provider, verifier: TokenVerifier
) -> None:
    token = provider.token("k1")
    assert verifier.verify(token).subject == "ada"
    provider.add("k2")
    provider.remove("k1")

    with pytest.raises(Unauthenticated, match="key id"):
        verifier.verify(token)


@pytest.mark.parametrize("broken", ["{not json", '{"keys": []}', '["a list"]'])
def test_a_file_that_no_longer_reads_keeps_the_previous_keys_and_logs_a_warning(
    provider: Provider, verifier: TokenVerifier, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    provider.path.write_text(broken)

    with caplog.at_level(logging.WARNING, logger="citadel.security"):
        assert verifier.verify(provider.token("k1")).subject == "ada"

    assert f"cannot reload the JWKS file {provider.path}, keeping its previous keys" in caplog.text


def test_a_deleted_file_keeps_the_previous_keys_and_logs_one_warning(
    provider: Provider, verifier: TokenVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    provider.path.unlink()

    with caplog.at_level(logging.WARNING, logger="citadel.security"):
        for subject in ("ada", "bob", "eve"):
            assert verifier.verify(provider.token("k1", subject)).subject == subject

    assert caplog.text.count(f"cannot read the JWKS file {provider.path}") == 1


def test_a_fixed_file_is_read_again_after_a_failed_reload(provider: Provider, verifier: TokenVerifier) -> None:
    provider.path.write_text("{not json")
    verifier.verify(provider.token("k1"))
    provider.add("k2")

    assert verifier.verify(provider.token("k2")).subject == "ada"


def test_the_file_is_looked_at_no_more_than_once_a_second(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: now[0])
    verifier = TokenVerifier.from_files(jwks_file=provider.path)
    provider.add("k2")

    now[0] += 0.5
    with pytest.raises(Unauthenticated, match="key id"):
        verifier.verify(provider.token("k2"))
    now[0] += 0.6
    assert verifier.verify(provider.token("k2")).subject == "ada"
