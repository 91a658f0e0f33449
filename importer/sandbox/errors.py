"""The sandbox's error type: one exception carries everything the error envelope needs."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API error answered as ``{"error": {type, code, message, param?, request_id}}``."""

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def envelope(self, request_id: str) -> dict[str, Any]:
        """The JSON body for this error."""
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        error["request_id"] = request_id
        return {"error": error}


def invalid(code: str, message: str, *, param: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, "invalid_request_error", code, message, param=param)


def not_found(message: str, *, param: str | None = None) -> ApiError:
    """A 404 ``resource_not_found``."""
    return ApiError(404, "not_found", "resource_not_found", message, param=param)


def conflict(code: str, message: str, *, param: str | None = None) -> ApiError:
    """A 409 of type ``conflict``."""
    return ApiError(409, "conflict", code, message, param=param)
