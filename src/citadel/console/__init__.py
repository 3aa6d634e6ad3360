"""The operations console at ``/console``: server-rendered pages for administrators.

* the module map: modules, their declared dependencies, the messages between them;
* the streams browser: events by stream, type and time; one event's metadata, decrypted payload and correlation
  chain (a forgotten subject's payload shown as forgotten);
* projections and process managers: position, lag in events, rate, last error, and rebuilds with live progress
  while the node goes on serving;
* dead letters grouped by failure, retried or discarded one by one or a group at once;
* the deployment: the modules this service runs and those it reaches over the broker, the relay and the inbox.

``create_asgi`` mounts it (``console_routes``); who may use it and how a browser signs in is in ``gate``.
"""

from citadel.console.routes import CONSOLE_PATH, console_routes

__all__ = ["CONSOLE_PATH", "console_routes"]
