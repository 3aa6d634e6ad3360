"""The deployment page of a service of the shop split in three over the real NATS server: the modules it runs,
those it reaches through the broker, and its relay and inbox."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import TokenVerifier
from tests.e2e.deployments import broker_namespace, three_services
from tests.e2e.shopper import SECRET

from .conftest import ADMIN, ORIGIN


async def test_a_service_lists_its_modules_the_others_and_its_relay_and_inbox(tmp_path: Path) -> None:
    async with three_services(tmp_path, broker_namespace()) as deployed:
        billing = deployed.services["billing"]
        asgi = create_asgi(
            billing, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET))
        )
        transport = httpx.ASGITransport(asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers=ADMIN) as client:
            response = await client.get("/console/deployment")
            consumers = await client.get("/console/consumers")

    assert response.status_code == 200
    page = response.text
    assert "This service, <strong>billing</strong>, runs some modules" in page
    assert "nats://127.0.0.1:4222/test-" in page
    assert re.findall(r"<tr><td>(\w+)</td><td>here \(billing\)</td></tr>", page) == ["billing"]
    elsewhere = re.findall(r"<tr><td>(\w+)</td><td>in another service, over the broker</td></tr>", page)
    assert elsewhere == ["analytics", "content", "orders", "users"]
    assert re.search(r"<td>outbox relay</td>\s*<td>[^<]+</td><td>\d+</td><td>\d+ events to publish</td>", page)
    assert re.search(r"<td>inbox</td>\s*<td>citadel-inbox-billing</td><td>\d+ imported since start</td>", page)
    assert consumers.status_code == 200
    assert "<td>relay</td>" in consumers.text
