"""Schemas and helpers shared by the API resources."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web
from marshmallow import Schema, fields, validate

from ouipost.http.context import API_KEY
from ouipost.identity.audit import Actor

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


class PageQuery(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    limit = fields.Integer(load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


def api_actor(request: web.Request) -> Actor:
    """The audit actor of an /api request: its API key (no admin user acts there), and where from."""
    return Actor(user_id=None, user_email=None, ip_address=request.remote,
                 user_agent=request.headers.get("User-Agent"), api_key_id=request[API_KEY].id)


def pagination(page: int, limit: int, total: int) -> dict[str, int]:
    return {
        "current_page": page,
        "total_pages": math.ceil(total / limit),
        "total_items": total,
        "per_page": limit,
    }


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before validation."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def validate_timezone(value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from marshmallow import ValidationError

    try:
        if not value or value.startswith(("/", ".")) or ".." in value:
            raise ValueError
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone {value!r}; use an IANA name such as Europe/Paris") from exc


class HashtagList(fields.List[str]):
    """A list of hashtags, normalised to `#tag` and deduplicated."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str | None]:
        from marshmallow import ValidationError

        from ouipost.platforms.text import normalise_hashtags

        items = super()._deserialize(value, attr, data, **kwargs)
        try:
            return list(normalise_hashtags(items))
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class StrictBoolean(fields.Boolean):
    """true or false, nothing else: "yes", 1 and "true" are type errors in a JSON body (the API's,
    the admin API's and the admin UI's one boolean field)."""

    default_error_messages = {"invalid": "Not a boolean; send true or false"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
