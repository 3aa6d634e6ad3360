"""The OpenAPI 3.1 document of an application, generated from its modules' contracts with msgspec."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

import msgspec

from citadel.http.naming import command_path, query_path
from citadel.http.problems import Problem

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"


def _return_type(handler: Any) -> Any:
    try:
        returns = typing.get_type_hints(handler).get("return")
    except Exception:
        return None
    return None if returns in (None, type(None), Any) else returns


def _problems(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        422: "Invalid request",
        503: "Unavailable",
    }
    return {
        str(status): {
            "description": reasons[status],
            "content": {"application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}},
        }
        for status in statuses
    }


def openapi_document(
    application: Application, *, title: str = "Citadel application", version: str = "1"
) -> dict[str, Any]:
    """Return the OpenAPI document of every public command and query of ``application``'s modules."""
    types: list[Any] = [Problem]
    operations: list[tuple[str, str, Any, Any, Any]] = []  # (method, path, module, message type, result type)
    for module in application.modules.values():
        for command_type, handler in module.commands.items():
            if module.is_exposed(command_type):
                operations.append(
                    (
                        "post",
                        command_path(module.name, command_type.__name__),
                        module,
                        command_type,
                        _return_type(handler),
                    )
                )
        for query_type, handler in module.queries.items():
            if module.is_exposed(query_type):
                operations.append(
                    ("get", query_path(module.name, query_type.__name__), module, query_type, _return_type(handler))
                )
    for _, _, _, message_type, result_type in operations:
        types.append(message_type)
        if result_type is not None:
            types.append(result_type)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(map(id, types), refs, strict=True))
    paths: dict[str, Any] = {}
    for method, path, module, message_type, result_type in operations:
        ok: dict[str, Any] = {"description": "OK"}
        if result_type is not None:
            ok["content"] = {"application/json": {"schema": schema_of[id(result_type)]}}
        operation: dict[str, Any] = {
            "operationId": f"{module.name}.{message_type.__name__}",
            "tags": [module.name],
            "summary": (message_type.__doc__ or message_type.__name__).strip().splitlines()[0],
        }
        if method == "post":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(message_type)]}},
            }
            operation["parameters"] = [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "a retry with the same key returns the first response and writes nothing",
                }
            ]
            ok["headers"] = {
                "Citadel-Position": {
                    "schema": {"type": "integer"},
                    "description": "log position of the command's last event",
                }
            }
            operation["responses"] = {"200": ok, **_problems(400, 403, 404, 409, 422, 503)}
        else:
            operation["parameters"] = [
                *_query_parameters(message_type, components),
                {
                    "name": "min_position",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer"},
                    "description": "wait (bounded) until the module's read models have processed this position",
                },
            ]
            operation["responses"] = {"200": ok, **_problems(403, 404, 422, 503)}
        paths[path] = {method: operation}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }


def _query_parameters(query_type: Any, components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = components.get(query_type.__name__, {})
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field_schema}
        for name, field_schema in schema.get("properties", {}).items()
    ]
