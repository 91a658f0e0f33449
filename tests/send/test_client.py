"""The client through httpx's ``transport=`` seam (``MockTransport``): requests, verdicts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from importer.cli import main
from importer.sandbox import Sandbox
from importer.send.client import KirimClient, Reply, Verdict, canonical_json, idempotency_key
from tests.conftest import contacts_file

KEY = "kdv_live_" + "A" * 24
BODY = {"phone_number": "+6281234567890", "name": "Siti", "email": None}
CONTACT = {"id": "ctc_1", "phone_number": "+6281234567890"}


def error(
    status: int,
    code: str,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"type": type_, "code": code, "message": code, "request_id": "req_1"}},
        headers=headers,
    )


@pytest.mark.parametrize(
    ("response", "verdict"),
    [
        (httpx.Response(201, json={"data": CONTACT}), Verdict.OK),
        (httpx.Response(200, json={"data": CONTACT}), Verdict.OK),
        # a contact, but not the one asked for: unproven, retried with the same key
        (httpx.Response(201, json={"data": {"id": "ctc_1"}}), Verdict.RETRY),
        (httpx.Response(201, json={"data": {**CONTACT, "phone_number": "+6281299"}}),
         Verdict.RETRY),
        (httpx.Response(201, json={"data": {**CONTACT, "phone_number": "6281234567890"}}),
         Verdict.RETRY),
        (httpx.Response(201, json={"data": {**CONTACT, "phone_number": "+62 812-3456-7890"}}),
         Verdict.OK),
        (error(429, "rate_limit_exceeded", "rate_limit_error"), Verdict.RETRY),
        (error(500, "internal_error", "api_error"), Verdict.RETRY),
        (httpx.Response(502, text="<html>bad gateway</html>"), Verdict.RETRY),
        (error(503, "upstream_error", "api_error"), Verdict.RETRY),
        (httpx.Response(504), Verdict.RETRY),
        (error(409, "idempotency_in_progress", "conflict"), Verdict.RETRY),
        (error(409, "contact_already_exists", "conflict"), Verdict.EXISTS),
        # Kirim has seen the key: an earlier attempt may have created the contact
        (error(422, "idempotency_key_reuse"), Verdict.AMBIGUOUS),
        (error(409, "idempotency_conflict", "conflict"), Verdict.AMBIGUOUS),
        (error(400, "invalid_phone_number"), Verdict.ROW),
        (error(401, "invalid_api_key", "authentication_error"), Verdict.STOP),
        (error(403, "phone_number_forbidden", "permission_error"), Verdict.STOP),
        (error(404, "resource_not_found", "not_found"), Verdict.STOP),
        (error(422, "account_not_connected"), Verdict.STOP),
    ],
)
def test_every_answer_has_a_verdict(response: httpx.Response, verdict: Verdict) -> None:
    reply = asyncio.run(_one(lambda _: response))
    assert reply.verdict is verdict


async def _one(handler: Callable[[httpx.Request], httpx.Response]) -> Reply:
    async with KirimClient(
        base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(handler)
    ) as client:
        return await client.create(account="106540352242922", body=BODY, key="k")


def test_create_sends_the_canonical_body_key_and_auth_to_the_account_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={"data": CONTACT},
            headers={
                "X-Request-Id": "req_9",
                "Idempotent-Replayed": "true",
                "X-RateLimit-Remaining": "41",
                "X-RateLimit-Limit": "60",
            },
        )

    reply = asyncio.run(_one(handler))
    request = seen[0]
    assert request.url == "https://api.test/v1/106540352242922/contacts"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == "k"
    assert request.content == canonical_json(BODY).encode()
    assert (reply.request_id, reply.replayed, reply.rate_remaining) == ("req_9", True, 41)
    assert KEY not in repr(reply)


@pytest.mark.parametrize(
    "echo",
    [KEY, "kc_test_other", "\\u006bdv_live_" + "B" * 24],  # the run's, another, JSON-escaped
)
def test_whatever_the_server_echoes_comes_back_redacted(echo: str) -> None:
    """Request ids (header or body), codes, messages and the body's fields: a key in any of
    them is redacted before a ``Reply`` holds it."""

    def handler(request: httpx.Request) -> httpx.Response:
        raw = (
            '{"data": {"id": "ctc_1", "name": "E", "metadata": {"E": ["E"]}}, '
            '"request_id": "req E"}'
        ).replace("E", echo)
        plain = json.loads(f'"{echo}"')  # a header has no JSON escapes
        return httpx.Response(201, content=raw.encode(), headers={"X-Request-Id": f"id {plain}"})

    def refused(request: httpx.Request) -> httpx.Response:
        raw = '{"error": {"code": "c E", "message": "m E", "request_id": "r E"}}'.replace("E", echo)
        return httpx.Response(400, content=raw.encode())

    reply = asyncio.run(_one(handler))
    assert reply.request_id == "id [redacted]"
    assert reply.data == {
        "id": "ctc_1", "name": "[redacted]", "metadata": {"[redacted]": ["[redacted]"]}
    }  # fmt: skip
    reply = asyncio.run(_one(refused))
    shown = (reply.error_code, reply.error_message, reply.request_id)
    assert shown == ("c [redacted]", "m [redacted]", "r [redacted]")


def test_a_transport_failure_is_a_value_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    reply = asyncio.run(_one(handler))
    assert reply.status == 0
    assert reply.verdict is Verdict.RETRY
    assert reply.error_code == "read_timeout"


def test_an_update_counts_only_with_the_id_it_patched_and_the_rows_phone() -> None:
    async def patch(answer: dict[str, str]) -> Reply:
        transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"data": answer}))
        async with KirimClient(
            base_url="https://api.test/v1", api_key=KEY, transport=transport
        ) as client:
            return await client.update(
                account="106540352242922", contact_id="ctc_1", phone=BODY["phone_number"],
                body={"name": "Siti"},
            )  # fmt: skip

    assert asyncio.run(patch(CONTACT)).verdict is Verdict.OK
    other = asyncio.run(patch({**CONTACT, "id": "ctc_2"}))
    assert (other.verdict, other.error_code) == (Verdict.RETRY, "answer_mismatch")
    assert asyncio.run(patch({**CONTACT, "phone_number": "+6281299"})).verdict is Verdict.RETRY


def test_an_answer_that_is_not_http_is_no_answer_never_a_status_of_kirim() -> None:
    """A real loopback server answers with a header aiohttp's parser refuses: aiohttp raises
    its own error with status 400, which must not read as Kirim's 400."""

    async def go() -> Reply:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: abc\r\n\r\n{}")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, KirimClient(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY) as c:
            return await c.create(account="1", body=BODY, key="k")

    reply = asyncio.run(go())
    assert (reply.status, reply.verdict) == (0, Verdict.RETRY)
    assert reply.error_message is not None
    assert reply.error_message.startswith("no answer from Kirim: what came back is not readable")
    assert "Content-Length" in reply.error_message
    assert "400" not in reply.error_message


def test_a_long_wait_after_no_answer_is_not_told_as_kirims_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from importer.pipeline import _waiting

    tell = _waiting(logging.getLogger("test_waits"))
    with caplog.at_level(logging.WARNING, logger="test_waits"):
        tell(30, Reply(status=0, error_code="ClientResponseError"))
        tell(900, Reply(status=503, error_code="upstream_error"))
    assert [r.getMessage() for r in caplog.records] == [
        "waiting 30 s before retrying (no answer from Kirim (ClientResponseError))",
        "waiting 900 s before retrying (Kirim answered 503 upstream_error)",
    ]


def test_idempotency_key_is_deterministic_and_depends_on_account_and_body() -> None:
    k = idempotency_key(account="1000001", body=BODY)
    assert k != idempotency_key(account="1000001", body=BODY, generation="ctc_gone")
    assert idempotency_key(account="1000001", body=BODY, generation="ctc_gone") == (
        idempotency_key(account="1000001", body=BODY, generation="ctc_gone")
    )
    assert k == idempotency_key(account="1000001", body=dict(reversed(list(BODY.items()))))
    assert k != idempotency_key(account="1000002", body=BODY)
    assert k != idempotency_key(account="1000001", body={**BODY, "name": "Sita"})
    assert len(k) <= 255


def test_requests_go_through_aiohttps_pool(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter (httpx-aiohttp) builds aiohttp transports itself; should an httpx upgrade
    route around it, requests would quietly go through httpcore at a sixth of the speed."""
    sent: list[str] = []
    original = aiohttp.ClientSession._request

    async def counted(self: aiohttp.ClientSession, method: str, url: Any, **kw: Any) -> Any:
        sent.append(method)
        return await original(self, method, url, **kw)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counted)
    file = contacts_file(tmp_path / "in.csv", 3)
    code = main(["run", str(file), "--base-url", box.base_url, "--report-dir", str(tmp_path / "r")])
    assert code == 0
    assert sent.count("POST") == 3
    assert sent.count("GET") == 2 + 3  # the pre-flight's two, a lookup per row


def test_a_request_without_an_answer_is_told_in_our_own_words() -> None:
    """The error code names what happened, never the class of whichever library raised."""
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def create(client: KirimClient) -> Reply:
        return await client.create(account="106540352242922", body=BODY, key="k")

    async def refused() -> Reply:
        async with KirimClient(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY) as client:
            return await create(client)

    reply = asyncio.run(refused())
    assert (reply.status, reply.error_code, reply.verdict) == (0, "connect_refused", Verdict.RETRY)
    assert (reply.error_message or "").startswith("could not connect")

    for raised, code in (
        (httpx.ConnectTimeout("slow"), "connect_timeout"),
        (httpx.ReadTimeout("slow"), "read_timeout"),
        (httpx.RemoteProtocolError("bad"), "protocol_error"),
        (httpx.ReadError("reset"), "connection_lost"),
        (httpx.ProxyError("no"), "proxy_error"),
    ):

        def handler(request: httpx.Request, raised: Exception = raised) -> httpx.Response:
            raise raised

        got = asyncio.run(_one(handler))
        assert (got.status, got.error_code) == (0, code)
