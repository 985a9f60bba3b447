"""The OpenAPI 3.1 document of an app, built from its routes (apispec with its marshmallow plugin).

For each route under /api, /admin and /healthz: the `@describe` record of its handler (summary,
query and body schemas, the `data` of its answer, its own error statuses), and what the route's
guards record (permission, role, workspace source, Idempotency-Key). From those follow the
security requirement, the X-Workspace-ID and Idempotency-Key header parameters, the rate-limit
headers and the common error answers, all in the error envelope.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import Schema, fields

from ouipost import __version__
from ouipost.http import idempotency
from ouipost.openapi import OperationDoc, operation_doc, views

DOCUMENTED_PREFIXES = ("/api/", "/admin/")
DOCUMENTED_PATHS = frozenset({"/healthz"})
ERROR_REF = {"$ref": "#/components/schemas/Error"}

# What each error status means here, and the codes it carries (DESIGN.md, "Conventions of the API").
ERROR_STATUSES: dict[int, str] = {
    400: "INVALID_JSON (a body that does not parse), WORKSPACE_REQUIRED (no X-Workspace-ID), BAD_REQUEST, "
         "INVALID_OAUTH_STATE, OAUTH_EXCHANGE_FAILED",
    401: "UNAUTHORIZED: no, an invalid, revoked or expired API key or admin token",
    403: "FORBIDDEN: the key or user lacks the permission (details.required) or role",
    404: "NOT_FOUND: no such resource, or one of another workspace",
    409: "CONFLICT: the resource is not in a state that allows this, or a twin request with the same "
         "Idempotency-Key is still running",
    413: "PAYLOAD_TOO_LARGE: the body is over its cap",
    415: "UNSUPPORTED_MEDIA_TYPE: the bytes are not a media type the network takes, or not multipart/form-data",
    422: "VALIDATION_ERROR (details per field; platform rules keyed by network), IDEMPOTENCY_KEY_REUSED",
    429: "RATE_LIMITED: over the key's per-minute limit (or too many failed logins); see Retry-After",
    503: "SERVICE_UNAVAILABLE: the database is unavailable (or, for /admin/health, a component is unhealthy)",
}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "The client's own X-Request-ID when sane, else one made for this request",
                     "required": True, "schema": {"type": "string"}},
    "X-RateLimit-Limit": {"description": "Requests allowed per minute for this key's tier",
                          "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the current one-minute window",
                              "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Epoch second at which the window ends", "schema": {"type": "integer"}},
    "Retry-After": {"description": "Whole seconds to wait before trying again", "schema": {"type": "integer"}},
    "Idempotent-Replayed": {"description": "true when this is the stored answer of an earlier request",
                            "schema": {"type": "string", "enum": ["true"]}},
}
PARAMETERS: dict[str, dict[str, Any]] = {
    "WorkspaceId": {
        "in": "header", "name": "X-Workspace-ID", "required": True, "schema": {"type": "string", "minLength": 1},
        "description": "The workspace this request acts in (ws_...); the key must reach it",
    },
    "IdempotencyKey": {
        "in": "header", "name": "Idempotency-Key", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
        "description": "The same key and body within 24 h returns the first answer (Idempotent-Replayed: true); "
                       "the same key with another body or path: 422 IDEMPOTENCY_KEY_REUSED",
    },
}
DESCRIPTION = """\
Self-hostable social media publishing: workspaces, social accounts, posts with media, schedules and
analytics across ten networks (/api, an `X-API-Key`), and their administration (/admin, a bearer JWT
from `POST /admin/login`).

Every answer is JSON: `{"success": true, "data": {...}}`, or `{"success": false, "error": {"code",
"message", "details"}}`. Workspace-scoped routes need `X-Workspace-ID`. Every /api answer to a valid
key carries `X-RateLimit-Limit`, `-Remaining` and `-Reset`; lists take `page` and `limit` (≤ 100).
"""


def is_documented(path: str) -> bool:
    """Whether a route's path belongs in the document (not the UI, the sandbox, media files or the docs)."""
    return path in DOCUMENTED_PATHS or path.startswith(DOCUMENTED_PREFIXES)


def documented_routes(app: web.Application) -> Iterator[tuple[str, str, Any]]:
    """(method, path, handler) of every route the document describes; HEAD (aiohttp's twin of each
    GET) is left out."""
    for route in app.router.routes():
        if route.resource is None or route.method in ("HEAD", "*"):
            continue
        path = route.resource.canonical
        if is_documented(path):
            yield route.method, path, route.handler


class SchemaNames:
    """Component names for marshmallow schemas: the class name, made unique where two modules use
    one (a request schema named like a view gets `Input`; another clash, its module's name before
    it); a partial (PUT) body gets `Changes`."""

    def __init__(self) -> None:
        self._taken: dict[str, type] = {}

    def __call__(self, schema: type[Schema] | Schema) -> str:
        cls = schema if isinstance(schema, type) else type(schema)
        name = cls.__name__
        if cls.__module__ != views.__name__:
            if isinstance(getattr(views, name, None), type):
                name += "Input"
            owner = self._taken.get(name)
            if owner is not None and owner is not cls:
                name = cls.__module__.rsplit(".", 1)[-1].title() + name
        self._taken.setdefault(name, cls)
        if not isinstance(schema, type) and schema.partial is True:
            name += "Changes"
        return name


def _choices(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """The `Choice` fields of the admin API list their choices as an enum."""
    choices = getattr(field, "choices", None)
    return {"enum": list(choices)} if isinstance(field, fields.String) and choices else {}


def build_spec(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`'s documented routes. ValueError names a route without
    `@describe`."""
    from ouipost.api.analytics import IsoDateOrDateTime

    plugin = MarshmallowPlugin(schema_name_resolver=SchemaNames())
    spec = APISpec(
        title="Oui Post API", version=__version__, openapi_version="3.1.0", plugins=[plugin],
        info={"description": DESCRIPTION},
    )
    plugin.map_to_openapi_type(IsoDateOrDateTime, "string", None)
    converter = plugin.converter
    if converter is None:  # APISpec sets it up when the plugin is registered
        raise RuntimeError("the marshmallow plugin has no converter")
    converter.add_attribute_function(_choices)
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.security_scheme("AdminToken", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=views.Error)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for name, parameter in PARAMETERS.items():
        spec.components.parameter(name, parameter["in"], {k: v for k, v in parameter.items() if k != "in"})

    for method, path, handler in documented_routes(app):
        doc = operation_doc(handler)
        if doc is None:
            raise ValueError(f"{method} {path} has no @describe")
        spec.path(path=path, operations={method.lower(): _operation(converter, method, path, handler, doc)})
    document = spec.to_dict()
    _link_created_resources(document["paths"])
    return document


def _link_created_resources(paths: dict[str, Any]) -> None:
    """OpenAPI links from each create (a 201 whose `data` holds one resource) to the operations on
    that resource, `{path}/{id}` and below, with the new resource's id: what a client does next, and
    what lets a fuzzer reach real resources instead of made-up ids."""
    for path, operations in paths.items():
        for operation in operations.values():
            created = operation["responses"].get("201")
            if created is None:
                continue
            data = created["content"]["application/json"]["schema"]["properties"]["data"]
            names = list(data.get("properties", {}))
            if len(names) != 1:
                continue
            links = {
                other["operationId"]: {
                    "operationId": other["operationId"],
                    "parameters": {"path.id": f"$response.body#/data/{names[0]}/id"},
                }
                for other_path, others in paths.items() if other_path.startswith(f"{path}/{{id}}")
                for other in others.values()
            }
            if links:
                created["links"] = links


def _operation(converter: OpenAPIConverter, method: str, path: str, handler: Any, doc: OperationDoc) -> dict[str, Any]:
    area = "admin" if path.startswith("/admin/") else "api" if path.startswith("/api/") else "health"
    permission = getattr(handler, "required_permission", None)
    role = getattr(handler, "required_role", None)
    workspace = getattr(handler, "workspace_source", None)
    idempotent = doc.idempotent
    if idempotent is None:
        idempotent = bool(getattr(handler, "honours_idempotency_key", False))
    guarded = area == "api" or (area == "admin" and hasattr(handler, "required_permission"))

    operation: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": doc.summary,
        "tags": [_tag(handler, area)],
        "parameters": [],
        "responses": {},
    }
    description = inspect.getdoc(handler)
    notes = []
    if permission:
        notes.append(f"Needs the `{permission}` permission.")
    if role:
        notes.append(f"Needs the `{role}` role.")
    if description or notes:
        operation["description"] = "\n\n".join(filter(None, [description, " ".join(notes)]))
    operation["security"] = (
        [{"ApiKey": []}] if area == "api" else [{"AdminToken": []}] if guarded else []
    )

    for name in re.findall(r"\{(\w+)", path):
        operation["parameters"].append({"in": "path", "name": name, "required": True, "schema": {"type": "string"}})
    if workspace == "header":
        operation["parameters"].append("WorkspaceId")
    if idempotent:
        operation["parameters"].append("IdempotencyKey")
    if doc.query is not None:
        operation["parameters"].extend(converter.schema2parameters(doc.query, location="query"))
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": _schema(converter, doc.body)}},
        }
        if doc.example is not None:
            operation["requestBody"]["content"]["application/json"]["example"] = dict(doc.example)
    if doc.upload is not None:
        operation["requestBody"] = {
            "required": True, "content": {"multipart/form-data": {"schema": _schema(converter, doc.upload)}},
        }

    rate_limited = area == "api"
    operation["responses"][str(doc.status)] = _success(converter, doc.summary, doc.data, rate_limited, idempotent)
    if doc.produces is not None:  # a file, not the envelope (the CSV export)
        operation["responses"][str(doc.status)]["content"] = {doc.produces: {"schema": {"type": "string"}}}
    for status, (when, data) in doc.also.items():
        operation["responses"][str(status)] = _success(converter, when, data, rate_limited, idempotent)
    for status in sorted(_error_statuses(area, path, doc, permission, role, workspace, guarded, idempotent)):
        operation["responses"][str(status)] = _error(status, rate_limited and status != 401)
    return operation


def _tag(handler: Any, area: str) -> str:
    module = handler.__module__.rsplit(".", 1)[-1]
    return {"api": module, "admin": f"admin {module}"}.get(area, "health")


def _error_statuses(
    area: str, path: str, doc: OperationDoc, permission: str | None, role: str | None, workspace: str | None,
    guarded: bool, idempotent: bool,
) -> set[int]:
    statuses = set(doc.errors) | {503}
    if guarded:
        statuses.add(401)
    if area == "api":
        statuses.add(429)
    if permission or role:
        statuses.add(403)
    if workspace == "header":
        statuses |= {400, 404}
    if "{" in path:
        statuses.add(404)
    if doc.query is not None:
        statuses.add(422)
    if doc.body is not None:
        statuses |= {400, 413, 422}
    if doc.upload is not None:
        statuses |= {400, 413, 415, 422}
    if idempotent:
        statuses |= {409, 422}
    return statuses


def _schema(converter: OpenAPIConverter, shape: Any) -> dict[str, Any]:
    """A schema class or instance as a reference to its component; a JSON schema dict as it is."""
    if isinstance(shape, Mapping):
        return dict(shape)
    return converter.resolve_nested_schema(shape)


def _data_schema(converter: OpenAPIConverter, data: Any) -> dict[str, Any]:
    if data is None:
        return {"type": "object"}
    if not isinstance(data, Mapping) or "type" in data:
        return _schema(converter, data)
    properties = {
        name: {"type": "array", "items": _schema(converter, value[0])} if isinstance(value, list)
        else _schema(converter, value)
        for name, value in data.items()
    }
    return {"type": "object", "required": list(properties), "properties": properties, "additionalProperties": False}


def _headers(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _success(
    converter: OpenAPIConverter, description: str, data: Any, rate_limited: bool, idempotent: bool,
) -> dict[str, Any]:
    names: tuple[str, ...] = ("X-Request-ID",)
    if rate_limited:
        names += RATE_LIMIT_HEADERS
    if idempotent:
        names += ("Idempotent-Replayed",)
    envelope = {
        "type": "object", "required": ["success", "data"], "additionalProperties": False,
        "properties": {"success": {"const": True}, "data": _data_schema(converter, data)},
    }
    headers = _headers(names)
    for name in RATE_LIMIT_HEADERS if rate_limited else ():  # on every answer to a valid key
        headers[name] = {**HEADERS[name], "required": True}
    return {"description": description, "headers": headers, "content": {"application/json": {"schema": envelope}}}


def _error(status: int, rate_limited: bool) -> dict[str, Any]:
    names: tuple[str, ...] = ("X-Request-ID",)
    if rate_limited:
        names += RATE_LIMIT_HEADERS
    if status in (429, 503):
        names += ("Retry-After",)
    return {"description": ERROR_STATUSES[status], "headers": _headers(names),
            "content": {"application/json": {"schema": ERROR_REF}}}
