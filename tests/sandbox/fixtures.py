"""Helpers shared by the sandbox tests (imported explicitly; conftest.py belongs to the lead)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from importer.sandbox import Sandbox, SandboxConfig

#: High enough that ordinary tests never meet the rate limit.
UNLIMITED: dict[str, Any] = {"write_per_minute": 1_000_000, "read_per_minute": 1_000_000}


@contextmanager
def running(**config: Any) -> Iterator[Sandbox]:
    """A started sandbox (unlimited rates unless overridden), stopped afterwards."""
    with Sandbox(SandboxConfig(**{**UNLIMITED, **config})) as sb:
        yield sb


def client_for(
    sb: Sandbox,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An httpx client on the sandbox base URL, authenticated with its token (``verify``: the
    client-side TLS context trusting the sandbox's CA, for an HTTPS sandbox)."""
    return httpx.Client(
        base_url=sb.base_url,
        headers={"Authorization": f"Bearer {token or sb.token}"},
        timeout=timeout,
        verify=verify,
    )


def root_of(sb: Sandbox) -> str:
    """The sandbox's origin (``/_sandbox/*`` lives there, outside ``/v1``)."""
    return sb.base_url.removesuffix("/v1")


def contacts_path(sb: Sandbox) -> str:
    """Relative path of the connected account's contacts collection."""
    return f"/{sb.account_id}/contacts"


def phone(i: int) -> str:
    """A distinct valid E.164 phone number."""
    return f"+62812{i:08d}"


def assert_error(resp: httpx.Response, status: int, type_: str, code: str) -> dict[str, Any]:
    """Check an error envelope and its request id; returns the ``error`` object."""
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["type"] == type_
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == resp.headers["X-Request-Id"]
    assert error["request_id"].startswith("req_")
    return error


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Messages logged at ERROR or above so far (e.g. "sandbox handler crashed", aiohttp's
    "Error handling request"): misbehaving on purpose must never look like a crash."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
