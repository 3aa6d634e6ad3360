"""Bearer tokens: what is accepted, and everything that is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from citadel import Actor, ConfigurationError, Unauthenticated
from citadel.security import TokenVerifier, issue_token

SECRET = "s" * 40


def rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "ada", "roles": ["customer"], "iss": "citadel", "aud": "citadel", "exp": now + 60, **overrides}


def test_a_development_token_gives_its_subject_and_roles() -> None:
    token = issue_token(SECRET, "ada", ["customer", "editor"], ttl=60)
    assert TokenVerifier(secret=SECRET).verify(token) == Actor("ada", frozenset({"customer", "editor"}))


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": -120},
        {"iss": "somebody-else"},
        {"aud": "another-api"},
        {"roles": "admin"},
        {"nbf": 600},
    ],
    ids=["expired", "issuer", "audience", "roles-not-a-list", "not-yet-valid"],
)
def test_tokens_with_wrong_claims_are_refused(bad: dict[str, object]) -> None:
    now = int(time.time())  # times are seconds from now, taken when the test runs (not when it is collected)
    bad = {k: now + v if k in ("exp", "nbf") and isinstance(v, int) else v for k, v in bad.items()}
    token = jwt.encode(claims(**bad), SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        TokenVerifier(secret=SECRET).verify(token)


def test_a_token_without_a_subject_or_expiry_is_refused() -> None:
    for missing in ("sub", "exp"):
        token = jwt.encode({k: v for k, v in claims().items() if k != missing}, SECRET, algorithm="HS256")
        with pytest.raises(Unauthenticated, match=missing):
            TokenVerifier(secret=SECRET).verify(token)


def test_a_token_of_an_identity_provider_verifies_with_its_public_key() -> None:
    private, public = rsa_pair()
    token = jwt.encode(claims(roles=["admin"]), private, algorithm="RS256")
    assert TokenVerifier(public_key=public.decode()).verify(token) == Actor("ada", frozenset({"admin"}))


def test_the_public_key_used_as_an_hmac_secret_is_refused() -> None:
    # the classic algorithm confusion: sign HS256 with the (public) key the server verifies RS256 with
    _, public = rsa_pair()

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims(roles=['admin']))}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(Unauthenticated):
        TokenVerifier(public_key=public.decode()).verify(forged)


def test_an_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode(claims(roles=["admin"]), None, algorithm="none")
    with pytest.raises(Unauthenticated):
        TokenVerifier(secret=SECRET).verify(unsigned)


def test_a_key_set_picks_the_key_by_the_tokens_key_id(tmp_path: Path) -> None:
    private, public = rsa_pair()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(serialization.load_pem_public_key(public)))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    verifier = TokenVerifier.from_files(jwks_file=tmp_path / "jwks.json")
    token = jwt.encode(claims(), private, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(token).subject == "ada"
    unknown = jwt.encode(claims(), private, algorithm="RS256", headers={"kid": "k2"})
    with pytest.raises(Unauthenticated, match="key id"):
        verifier.verify(unknown)


def test_a_short_secret_or_no_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="32 characters"):
        TokenVerifier(secret="short")
    with pytest.raises(ConfigurationError, match="exactly one"):
        TokenVerifier()


def test_a_verified_token_is_remembered_only_until_it_expires() -> None:
    verifier = TokenVerifier(secret=SECRET, leeway=0)
    token = issue_token(SECRET, "ada", ["customer"], ttl=1)
    assert verifier.verify(token).subject == "ada"
    assert verifier.verify(token).subject == "ada"  # from memory this time
    time.sleep(1.1)
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


@pytest.mark.parametrize("subject", ["system", "anonymous"])
def test_a_token_whose_subject_is_reserved_for_citadels_own_actors_is_refused(subject: str) -> None:
    token = issue_token(SECRET, subject, ["admin"], ttl=60)

    with pytest.raises(Unauthenticated, match=f"the token's subject '{subject}' is reserved"):
        TokenVerifier(secret=SECRET).verify(token)


def test_a_subject_that_only_resembles_a_reserved_one_is_accepted() -> None:
    for subject in ("System", "system2", "anonymous-ada"):
        assert TokenVerifier(secret=SECRET).verify(issue_token(SECRET, subject, ttl=60)).subject == subject


def test_a_secret_file_others_can_read_is_refused_naming_chmod(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "secret").chmod(0o644)

    with pytest.raises(ConfigurationError, match=r"run `chmod 600 .*secret`"):
        TokenVerifier.from_files(secret_file=tmp_path / "secret")


@pytest.mark.parametrize("subject", ["system", "anonymous"])
async def test_a_request_bearing_a_token_for_a_reserved_subject_is_answered_401(tmp_path: Path, subject: str) -> None:
    from citadel.http import create_asgi
    from citadel.http.auth import bearer_authenticator
    from examples.shop import build_app

    app = build_app(store=f"sqlite:///{tmp_path}/shop.db")
    asgi = create_asgi(app, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET)))
    bearer = {"authorization": f"Bearer {issue_token(SECRET, subject, ['admin'], ttl=60)}"}
    await app.start(consumers=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
            response = await client.get("/analytics/revenue", headers=bearer)
    finally:
        await app.stop()

    assert response.status_code == 401
