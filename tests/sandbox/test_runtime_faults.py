"""Changing faults while the sandbox runs: ``Sandbox.set_faults`` and ``/_sandbox/faults``,
their validation, the config fields they start from, and the CLI flags."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import httpx
import pytest

from importer.sandbox import FaultSettings, Sandbox, SandboxConfig
from importer.sandbox.command import add_arguments, config_from_args
from importer.sandbox.faults import DEFAULT_OVERSIZE_BYTES
from tests.sandbox.fixtures import client_for, contacts_path, phone, root_of, running

BAD_CHANGES: list[dict[str, Any]] = [
    {"no_such_fault": 1},
    {"html_rate": 1.5},
    {"html_rate": -0.1},
    {"html_rate": True},
    {"html_rate": "0.5"},
    {"html_rate": 0.5, "oversize_rate": 0.3, "endless_rate": 0.3},
    {"fault_rate": 0.7, "ambiguous_rate": 0.7},
    {"oversize_bytes": 10},
    {"oversize_bytes": 1000.0},
    {"retry_after_s": -1},
    {"retry_after_s": math.inf},
    {"retry_after_s": "5"},
    {"retry_after_s": 10**400},
    {"error_message": ""},
    {"error_message": 42},
]
#: Settings a running sandbox has that its config does not start with.
BAD_RUNTIME_CHANGES: list[dict[str, Any]] = [
    {"echo_header": ""},
    {"echo_header": "X Bad"},
    {"echo_header": 7},
]


def test_defaults_and_config_fields() -> None:
    assert SandboxConfig().initial_faults == FaultSettings()
    assert FaultSettings().oversize_bytes == DEFAULT_OVERSIZE_BYTES
    cfg = SandboxConfig(html_rate=0.25, retry_after_s=1, me_body={"data": {}}, fault_rate=0.1)
    faults = cfg.initial_faults
    assert (faults.html_rate, faults.retry_after_s, faults.fault_rate) == (0.25, 1.0, 0.1)
    assert faults.me_body == {"data": {}}
    assert faults.retry_after_header == "1"


@pytest.mark.parametrize("changes", BAD_CHANGES)
def test_bad_config_fields(changes: dict[str, Any]) -> None:
    if "no_such_fault" in changes:
        with pytest.raises(TypeError):
            SandboxConfig(**changes)
        return
    with pytest.raises(ValueError):
        SandboxConfig(**changes)


def test_unserialisable_body_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON"):
        SandboxConfig(me_body={"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        FaultSettings(accounts_body=math.nan)


@pytest.mark.parametrize("changes", BAD_CHANGES + BAD_RUNTIME_CHANGES)
def test_set_faults_validates_and_changes_nothing_on_error(changes: dict[str, Any]) -> None:
    with running(html_rate=0.2) as sb:
        before = sb.faults
        with pytest.raises(ValueError):
            sb.set_faults(**changes)
        assert sb.faults == before


def test_set_faults_takes_effect_at_once() -> None:
    with running() as sb, client_for(sb) as http:
        path = contacts_path(sb)
        assert http.post(path, json={"phone_number": phone(1)}).status_code == 201
        new = sb.set_faults(fault_rate=1.0)
        assert new == sb.faults
        assert new.fault_rate == 1.0
        assert http.post(path, json={"phone_number": phone(2)}).status_code in (500, 502, 503)
        sb.set_faults(fault_rate=0.0, error_message="nope")
        assert http.post(path, json={"phone_number": phone(2)}).status_code == 400
        sb.set_faults(error_message=None)
        assert http.post(path, json={"phone_number": phone(2)}).status_code == 201
        assert sb.injected()["fault"] == 1
        assert sb.injected()["error_message"] == 1
        assert sb.config.fault_rate == 0.0  # the frozen config keeps the initial values


def test_set_faults_before_start_and_after_stop() -> None:
    sb = Sandbox(SandboxConfig(write_per_minute=1_000_000))
    sb.set_faults(html_rate=1.0)
    with sb, client_for(sb) as http:
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1)})
        assert resp.headers["Content-Type"].startswith("text/html")
    assert sb.set_faults(html_rate=0.0).html_rate == 0.0


def test_faults_endpoint() -> None:
    with running() as sb, client_for(sb) as http:
        url = root_of(sb) + "/_sandbox/faults"
        assert httpx.get(url).json() == FaultSettings().as_json()
        resp = httpx.post(url, json={"retry_after_s": 7, "me_body": {"data": None}})
        assert resp.status_code == 200
        current = resp.json()
        assert current["retry_after_s"] == 7.0
        assert current["me_body"] == {"data": None}
        assert current == httpx.get(url).json() == sb.faults.as_json()
        assert http.post(contacts_path(sb), json={"phone_number": phone(1)}).status_code == 429
        assert http.get("/me").json() == {"data": None}
        assert httpx.post(url, json={"retry_after_s": None}).json()["retry_after_s"] is None
        assert http.post(contacts_path(sb), json={"phone_number": phone(1)}).status_code == 201
        # the control endpoint is not counted among API requests
        assert sb.request_count("POST", "/_sandbox/faults") == 0
        assert sum(sb.status_counts().values()) == 3


@pytest.mark.parametrize(
    "body",
    [
        *[json.dumps(c).encode() for c in BAD_CHANGES],  # Python's json writes Infinity
        b"not json",
        b"[1, 2]",
        b"",
        b"\xff\xfe",
    ],
)
def test_faults_endpoint_validates(body: bytes) -> None:
    with running(html_rate=0.2) as sb:
        before = sb.faults
        resp = httpx.post(
            root_of(sb) + "/_sandbox/faults",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["code"] == "invalid_field_value"
        assert error["message"]
        assert error["request_id"] == resp.headers["X-Request-Id"]
        assert sb.faults == before


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_fault_flags() -> None:
    cfg = config_from_args(
        _parse(
            [
                "--html-rate",
                "0.1",
                "--oversize-rate",
                "0.2",
                "--oversize-bytes",
                "1000",
                "--endless-rate",
                "0.3",
                "--retry-after",
                "2.5",
                "--error-message",
                "boom",
            ]
        )
    )
    assert (cfg.html_rate, cfg.oversize_rate, cfg.endless_rate) == (0.1, 0.2, 0.3)
    assert (cfg.oversize_bytes, cfg.retry_after_s, cfg.error_message) == (1000, 2.5, "boom")
    default = config_from_args(_parse([]))
    assert default.initial_faults == FaultSettings()
    for bad in (["--html-rate", "2"], ["--retry-after", "-1"], ["--retry-after", "inf"]):
        with pytest.raises(SystemExit):
            _parse(bad)
    with pytest.raises(ValueError, match="must not exceed"):
        config_from_args(_parse(["--html-rate", "0.6", "--endless-rate", "0.6"]))
