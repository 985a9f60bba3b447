"""The API description, kept next to the routes: `@describe(...)` on each handler records what the
OpenAPI document says about it, and `ouipost.openapi.spec` builds the document from the app's routes.

What a route already says about itself is not repeated here: the permission (`required_permission`
of `api_route`/`admin_route`), the role, the workspace source (`workspace_source` of `api_route`),
the path parameters and whether it honours Idempotency-Key (`honours_idempotency_key` of
`ouipost.http.idempotency.idempotent`). `describe` adds the rest: the query and body schemas the handler
loads, the shape of `data` in its answer, its status and the error statuses that come from its own
logic (409, 413, 415...). The common ones (401, 403, 404, 422, 429, 503...) follow from the rest.

`data` is either a marshmallow schema (the whole `data` object) or a mapping of names to a schema,
`[schema]` for a list of them, or a JSON schema dict: `{"post": views.Post}`,
`{"posts": [views.Post], "pagination": views.Pagination}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from marshmallow import Schema

SchemaLike = type[Schema] | Schema
DataShape = SchemaLike | Mapping[str, Any]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class OperationDoc:
    """What the OpenAPI document says about one route beyond what the route itself records."""

    summary: str
    data: DataShape | None
    status: int = 200
    query: SchemaLike | None = None
    body: SchemaLike | None = None
    upload: SchemaLike | Mapping[str, Any] | None = None  # multipart/form-data fields (a file upload)
    errors: tuple[int, ...] = ()
    also: Mapping[int, tuple[str, DataShape]] = field(default_factory=dict)  # other successes: (when, data)
    idempotent: bool | None = None  # None: as the handler chain says
    example: Mapping[str, Any] | None = None  # a body the route accepts, shown in /docs
    produces: str | None = None  # the media type of a success that is not the JSON envelope (text/csv)


def describe(
    summary: str, *, data: DataShape | None, status: int = 200, query: SchemaLike | None = None,
    body: SchemaLike | None = None, upload: SchemaLike | Mapping[str, Any] | None = None, errors: tuple[int, ...] = (),
    also: Mapping[int, tuple[str, DataShape]] | None = None, idempotent: bool | None = None,
    example: Mapping[str, Any] | None = None, produces: str | None = None,
) -> Callable[[F], F]:
    """Record the description of a route's handler (any position among its decorators: the route
    decorators copy a handler's attributes onto their wrappers)."""
    doc = OperationDoc(summary=summary, data=data, status=status, query=query, body=body, upload=upload,
                       errors=tuple(errors), also=dict(also or {}), idempotent=idempotent, example=example,
                       produces=produces)

    def mark(handler: F) -> F:
        handler.openapi = doc  # type: ignore[attr-defined]  # a mark read with getattr
        return handler

    return mark


def operation_doc(handler: Any) -> OperationDoc | None:
    """The description recorded on a route's handler, or None."""
    return getattr(handler, "openapi", None)
