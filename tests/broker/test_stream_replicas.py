"""The events stream in a NATS cluster keeps the copies it was given: ``broker_stream_replicas`` sets them,
and a service starting without the setting (or an older one) no longer cuts a three-copy stream back to one,
which JetStream does to a stream updated without a replica count. Three real ``nats-server`` processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import nats
import pytest

from citadel.config import load_settings
from citadel.errors import ConfigurationError
from citadel.messaging.connection import BrokerConnection
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from tests.broker.natsd import NatsServer, free_port, nats_server

NAMESPACE = "replicated"
STREAM = "REPLICATED_EVENTS"


@contextlib.contextmanager
def nats_cluster(size: int = 3) -> Iterator[list[NatsServer]]:
    """``size`` clustered servers with JetStream, each routed to the others."""
    routes = [free_port() for _ in range(size)]
    with contextlib.ExitStack() as stack:
        servers = []
        for i, port in enumerate(routes):
            peers = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes if p != port)
            config = (
                f'server_name: "n{i}"\ncluster {{\n  name: "c"\n  listen: "127.0.0.1:{port}"\n  routes: [{peers}]\n}}\n'
            )
            servers.append(stack.enter_context(nats_server(config)))
        yield servers


async def replicas_of(server: NatsServer) -> int:
    client = await nats.connect(server.url)
    try:
        info = await client.jetstream().stream_info(STREAM)
        return int(info.config.num_replicas or 1)
    finally:
        await client.close()


async def started(server: NatsServer, replicas: int | None) -> None:
    """A service's broker connecting (which creates or updates the stream), then closing."""
    connection = BrokerConnection(stream_replicas=replicas)
    for attempt in range(60):  # until the cluster has elected its JetStream leader
        broker = NatsBroker(f"{server.url}/{NAMESPACE}", keys=ServiceKeys.generate(), connection=connection)
        try:
            await broker.connect()
        except Exception:
            if attempt == 59:
                raise
            await asyncio.sleep(0.5)
            continue
        await broker.close()
        return


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[NatsServer]]:
    with nats_cluster() as servers:
        yield servers


async def test_the_setting_gives_the_stream_its_copies_and_a_start_without_it_keeps_them(
    cluster: list[NatsServer],
) -> None:
    await started(cluster[0], 3)
    assert await replicas_of(cluster[1]) == 3
    await started(cluster[2], None)  # another service, without the setting
    assert await replicas_of(cluster[0]) == 3


@pytest.mark.parametrize("replicas", [0, 6, -1])
def test_a_count_jetstream_cannot_keep_is_refused(replicas: int) -> None:
    with pytest.raises(ConfigurationError, match=r"broker_stream_replicas is .*1 to 5"):
        BrokerConnection(stream_replicas=replicas)


def test_the_setting_is_read_from_the_environment() -> None:
    assert load_settings(environ={"CITADEL_BROKER_STREAM_REPLICAS": "3"}).broker_stream_replicas == 3
    with pytest.raises(ConfigurationError):
        load_settings(environ={"CITADEL_BROKER_STREAM_REPLICAS": "three"})
