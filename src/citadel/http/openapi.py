"""The OpenAPI 3.1 document of an application, generated from its modules' contracts with msgspec.

The document is exact: what it allows, the endpoints accept, and what it refuses, they refuse. Every parameter
and header the endpoints check carries the same constraints (``min_position``'s range and form,
``Idempotency-Key``'s length and characters), and every route lists the problems it can answer. Docstrings
become summaries and descriptions in Markdown (see ``docstrings.markdown``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from citadel.http.docstrings import markdown, summary_and_description
from citadel.http.naming import command_path, query_path
from citadel.http.problems import Problem
from citadel.topology import MAX_POSITION

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["IDEMPOTENCY_KEY", "decimal_at_most", "openapi_document", "position_schema"]

_REF = "#/components/schemas/{name}"
_RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
# (description, headers it always carries) of each problem status.
_PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Malformed request: JSON body, URL or `Idempotency-Key` "
        "(`malformed-json`, `malformed-url`, `bad-idempotency-key`)",
        {},
    ),
    401: (
        "Unauthenticated: the credentials could not be verified",
        {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    ),
    403: ("Forbidden: the caller may not send this message", {}),
    404: ("Not found: the entity the message names does not exist", {}),
    409: ("Refused by a business rule, or a concurrent change (`conflict`, `concurrency-conflict`)", {}),
    410: ("Gone: the data was forgotten", {}),
    413: ("The body is larger than the server accepts", {}),
    422: (
        "Invalid request: a field, parameter or header does not match, a rule of the command refused it, or "
        "`min_position` is beyond the highest position written (`position-not-written`)",
        {},
    ),
    429: ("Too many requests", {"Retry-After": {"required": True, **_RETRY_AFTER}}),
    503: (
        "Unavailable: the store cannot be reached, or the read models did not reach `min_position` within the "
        "wait (`not-caught-up`)",
        {"Retry-After": {"required": True, **_RETRY_AFTER}},
    ),
}
_COMMAND_PROBLEMS = (400, 401, 403, 404, 409, 410, 413, 422, 429, 503)
_QUERY_PROBLEMS = (400, 401, 403, 404, 409, 410, 422, 429, 503)

IDEMPOTENCY_KEY: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"}
"""What an ``Idempotency-Key`` may be: what ``citadel.context.is_safe_id`` allows."""


def decimal_at_most(limit: int) -> str:
    """Return a regular expression (unanchored) of the decimal numbers from 0 to ``limit``, leading zeros
    allowed, as ``citadel.topology.parse_position`` reads them."""
    digits = str(limit)
    options = [f"[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):  # as long as ``limit``: equal up to digit i, then smaller
        if digit != "0":
            rest = len(digits) - i - 1
            options.append(f"{digits[:i]}[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    options.append(digits)
    return "0*(?:" + "|".join(options) + ")"


def position_schema(modules: Sequence[str]) -> dict[str, Any]:
    """Return the schema of a log position as clients pass it back (``min_position``): a number from 0 to
    ``MAX_POSITION``, or ``module:number`` naming one of ``modules`` (a command's ``Citadel-Position`` where the
    modules run in several services; see ``citadel.topology.parse_position``)."""
    return {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
            {"type": "string", "pattern": f"^{_module_prefix(modules)}{decimal_at_most(MAX_POSITION)}$"},
        ]
    }


def _module_prefix(modules: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(name) for name in sorted(modules)) + "):"


def _position_header(modules: Sequence[str]) -> dict[str, Any]:
    """The schema of ``Citadel-Position``, as text (a header): a number, or ``module:number``."""
    return {"type": "string", "pattern": f"^(?:{_module_prefix(modules)})?{decimal_at_most(MAX_POSITION)}$"}


def _return_type(handler: Any) -> Any:
    """The handler's result type as the document can describe it: None when it returns nothing or anything, or
    when its annotation has no JSON schema (``dict[str, object]``): the answer is then documented as any JSON."""
    try:
        returns = typing.get_type_hints(handler).get("return")
        if returns in (None, type(None), Any):
            return None
        msgspec.json.schema(returns)
    except Exception:
        return None
    return returns


def _problems(statuses: Sequence[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in statuses:
        description, headers = _PROBLEMS[status]
        content = {"application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}}
        responses[str(status)] = {"description": description, "content": content}
        if headers:
            responses[str(status)]["headers"] = headers
    return responses


def openapi_document(
    application: Application,
    *,
    title: str = "Citadel application",
    max_body: int | None = None,
    max_wait: float | None = None,
) -> dict[str, Any]:
    """Return the OpenAPI document of every public command and query of ``application``'s modules; its
    ``info`` is the application's title (else ``title``), version and description. ``max_body``: the largest
    request body the endpoints accept, in bytes, said in each command's description of its body; ``max_wait``:
    the longest ``Citadel-Wait`` a query may ask for, in seconds (None: the header is not documented)."""
    types: list[Any] = [Problem]
    operations: list[tuple[str, str, Any, Any, Any]] = []  # (method, path, module, message type, result type)
    for module in application.modules.values():
        for command_type, handler in module.commands.items():
            if module.is_exposed(command_type):
                path = command_path(module.name, command_type.__name__)
                operations.append(("post", path, module, command_type, _return_type(handler)))
        for query_type, handler in module.queries.items():
            if module.is_exposed(query_type):
                path = query_path(module.name, query_type.__name__)
                operations.append(("get", path, module, query_type, _return_type(handler)))
    for _, _, _, message_type, result_type in operations:
        types.append(message_type)
        if result_type is not None:
            types.append(result_type)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    for component in components.values():
        _to_markdown(component)
    schema_of = dict(zip(map(id, types), refs, strict=True))
    position = position_schema(list(application.modules))
    paths: dict[str, Any] = {}
    for method, path, module, message_type, result_type in operations:
        ok: dict[str, Any] = {"description": "OK"}
        if result_type is not None:
            ok["content"] = {"application/json": {"schema": schema_of[id(result_type)]}}
        summary, description = summary_and_description(message_type.__doc__ or message_type.__name__)
        operation: dict[str, Any] = {
            "operationId": f"{module.name}.{message_type.__name__}",
            "tags": [module.name],
            "summary": summary,
        }
        if description:
            operation["description"] = description
        if method == "post":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(message_type)]}},
            }
            if max_body is not None:
                operation["requestBody"]["description"] = f"at most {max_body} bytes (413 beyond)"
            operation["parameters"] = [_idempotency_key()]
            ok["headers"] = {
                "Citadel-Position": {
                    "required": True,
                    "schema": _position_header(list(application.modules)),
                    "description": "log position of the command's last event; pass it as `min_position`",
                }
            }
            operation["responses"] = {"200": ok, **_problems(_COMMAND_PROBLEMS)}
        else:
            operation["parameters"] = [
                *_query_parameters(message_type, components),
                *([] if max_wait is None else [_citadel_wait(max_wait)]),
                {
                    "name": "min_position",
                    "in": "query",
                    "required": False,
                    "schema": position,
                    "description": "a command's `Citadel-Position`: wait (bounded) until the module's read models "
                    "have processed it; 422 if it was never written",
                },
            ]
            operation["responses"] = {"200": ok, **_problems(_QUERY_PROBLEMS)}
        paths[path] = {method: operation}
    info = {"title": application.title or title, "version": application.version}
    if application.description:
        info["description"] = application.description
    return {"openapi": "3.1.0", "info": info, "paths": paths, "components": {"schemas": components}}


def _idempotency_key() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": IDEMPOTENCY_KEY,
        "description": "a retry with the same key returns the first response and writes nothing (400 when the "
        "key is not 1 to 128 characters of `A-Z a-z 0-9 . _ : -`)",
    }


def _citadel_wait(max_wait: float) -> dict[str, Any]:
    return {
        "name": "Citadel-Wait",
        "in": "header",
        "required": False,
        "schema": {"type": "number", "minimum": 0, "maximum": max_wait},
        "description": "seconds `min_position` may wait for the read models, instead of the server's default",
    }


def _query_parameters(query_type: Any, components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = components.get(query_type.__name__, {})
    required = set(schema.get("required", []))
    parameters = []
    for name, field_schema in schema.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field_schema}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


_VALUES = frozenset({"default", "const", "enum", "examples"})  # data, not schema: left as they are


def _to_markdown(node: Any) -> None:
    """Rewrite, in place, every ``description`` text of a schema tree from reST to Markdown."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = markdown(value)
            elif key == "properties" and isinstance(value, dict):  # names of fields: any may be "default"
                for field in value.values():
                    _to_markdown(field)
            elif key not in _VALUES:
                _to_markdown(value)
    elif isinstance(node, list):
        for item in node:
            _to_markdown(item)
