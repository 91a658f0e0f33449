"""Lifecycle of the embedded sandbox, its configuration, the state view and the CLI."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from importer.sandbox import Sandbox, SandboxConfig
from importer.sandbox.command import add_arguments, config_from_args
from tests.sandbox.fixtures import client_for, contacts_path, phone, running

ROOT = Path(__file__).resolve().parent.parent


def _sandbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kirim-sandbox"]


def test_start_stop_is_clean_and_identity_is_fresh() -> None:
    first = Sandbox(SandboxConfig(seed=1))
    second = Sandbox(SandboxConfig(seed=1))
    assert first.organization_id != second.organization_id
    assert first.token != second.token
    assert first.token.startswith("kdv_live_")
    assert len(first.token) == len("kdv_live_") + 24
    first.start()
    try:
        assert first.base_url == f"http://127.0.0.1:{first.port}/v1"
        assert first.account_id == "106540352242922"
        with client_for(first) as http:
            assert http.get("/me").json()["data"]["organization"]["id"] == first.organization_id
        with pytest.raises(RuntimeError):
            first.start()
    finally:
        first.stop()
    first.stop()  # idempotent
    assert _sandbox_threads() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(first.base_url + "/me")


def test_busy_port_raises_from_start() -> None:
    with running() as sb:
        other = Sandbox(SandboxConfig(port=sb.port))
        with pytest.raises(OSError):
            other.start()
    assert _sandbox_threads() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxConfig(host=host)


def test_ipv6_loopback_works() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sb = Sandbox(SandboxConfig(host="::1")).start()
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    try:
        assert sb.base_url.startswith("http://[::1]:")
        with client_for(sb) as http:
            assert http.get("/me").status_code == 200
    finally:
        sb.stop()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fault_rate": 1.5},
        {"fault_rate": 0.6, "ambiguous_rate": 0.6},
        {"write_per_minute": 0},
        {"latency_ms": (10.0, 5.0)},
        {"latency_ms": -1.0},
        {"port": 70000},
        {"on_duplicate_phone": "upsert"},
        {"accounts": ()},
    ],
)
def test_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(**kwargs)  # type: ignore[arg-type]


def test_state_view_needs_no_auth_and_matches_stats() -> None:
    with running() as sb, client_for(sb) as http:
        http.post(contacts_path(sb), json={"phone_number": phone(1)})
        http.post(contacts_path(sb), json={"phone_number": "bad"})
        http.get(contacts_path(sb))
        state = httpx.get(sb.base_url.removesuffix("/v1") + "/_sandbox/state").json()
        assert state["organization"]["id"] == sb.organization_id
        assert [c["phone_number"] for c in state["contacts"]] == [phone(1)]
        assert state["creations_by_phone"] == {phone(1): 1}
        assert state["status_counts"] == {"200": 1, "201": 1, "400": 1}
        assert {"method": "POST", "route": "/v1/{phone_number_id}/contacts", "count": 2} in state[
            "requests"
        ]
        assert state["rate_limited"] == 0
        assert sb.request_count("GET", "/v1/{phone_number_id}/contacts") == 1
        assert sb.request_count("post", "/v1/{phone_number_id}/contacts") == 2
        assert sb.request_count("GET", "/v1/me") == 0
        assert state == sb.stats()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_arguments() -> None:
    cfg = config_from_args(
        _parse(
            [
                "--latency-ms",
                "50-150",
                "--write-per-minute",
                "60",
                "--fault-rate",
                "0.1",
                "--on-duplicate-phone",
                "conflict",
                "--seed",
                "3",
            ]
        )
    )
    assert cfg.latency_range == (50.0, 150.0)
    assert (cfg.write_per_minute, cfg.read_per_minute) == (60, 6000)
    assert (cfg.fault_rate, cfg.on_duplicate_phone, cfg.seed) == (0.1, "conflict", 3)
    assert config_from_args(_parse(["--latency-ms", "20"])).latency_range == (20.0, 20.0)
    for bad in (["--host", "0.0.0.0"], ["--latency-ms", "x"], ["--fault-rate", "2"]):
        with pytest.raises(SystemExit):
            _parse(bad)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer.sandbox", "--write-per-minute", "60", "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().partition("=")[::2] for _ in range(2))
        base_url, token = lines["KIRIM_BASE_URL"], lines["KIRIM_API_KEY"]
        resp = httpx.get(base_url + "/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.json()["data"]["rate_limits"]["tier"] == "free"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_bad_config() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "importer.sandbox",
            "--fault-rate",
            "0.7",
            "--ambiguous-rate",
            "0.7",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2
    assert "must not exceed" in proc.stderr
