"""The one error hierarchy. Every failure a client sees is an ApiError, turned into the envelope
`{"success": false, "error": {"code", "message", "details"}}` by the error middleware."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    default_message = "Something went wrong on our side"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.details = details or {}
        if code:
            self.code = code
        self.headers = headers or {}


class InvalidJson(ApiError):
    status, code, default_message = 400, "INVALID_JSON", "The request body is not valid JSON"


class BadRequest(ApiError):
    status, code, default_message = 400, "BAD_REQUEST", "The request is not valid"


class WorkspaceRequired(ApiError):
    status, code = 400, "WORKSPACE_REQUIRED"
    default_message = "This route needs the X-Workspace-ID header"


class Unauthorized(ApiError):
    status, code, default_message = 401, "UNAUTHORIZED", "A valid API key is required"


class Forbidden(ApiError):
    status, code, default_message = 403, "FORBIDDEN", "You are not allowed to do this"


class NotFound(ApiError):
    status, code, default_message = 404, "NOT_FOUND", "Not found"


class Conflict(ApiError):
    status, code, default_message = 409, "CONFLICT", "The resource is not in a state that allows this"


class PayloadTooLarge(ApiError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "The request body is too large"


class UnsupportedMediaType(ApiError):
    status, code, default_message = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class ValidationError(ApiError):
    status, code, default_message = 422, "VALIDATION_ERROR", "The request has invalid fields"


class RateLimited(ApiError):
    status, code, default_message = 429, "RATE_LIMITED", "Too many requests"


class ServiceUnavailable(ApiError):
    status, code, default_message = 503, "SERVICE_UNAVAILABLE", "The service is unavailable"
