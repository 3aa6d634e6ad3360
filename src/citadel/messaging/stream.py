"""The events stream every service of an application shares on JetStream: created by the first service to
start, brought up to date by the others, never shrunk.

JetStream replaces a stream's whole configuration on update, so a service that sent no replica count would cut
a stream that an operator (or ``broker_stream_replicas``) gave three replicas back to one. The update therefore
keeps the stream's own count unless a count is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ensure_stream"]


async def ensure_stream(js: Any, name: str, subjects: list[str], *, replicas: int | None = None) -> None:
    """Create the stream ``name`` over ``subjects`` with ``replicas`` copies (one when None), or update it to
    those subjects, keeping its replica count unless ``replicas`` is given.

    Raises:
        Exception: whatever nats-py raised when JetStream refused (the caller turns it into a clear error).
    """
    from nats.js import api
    from nats.js.errors import NotFoundError

    config = api.StreamConfig(
        name=name, subjects=subjects, storage=api.StorageType.FILE, duplicate_window=120.0, num_replicas=replicas or 1
    )
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
        return
    if replicas is None:
        config.num_replicas = info.config.num_replicas or 1
    await js.update_stream(config)
