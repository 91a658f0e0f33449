"""Shared fixtures: a real sandbox on an ephemeral loopback port, and input files on disk."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.sandbox import Sandbox, SandboxConfig

#: High enough that a test never meets the rate limit.
UNLIMITED = {"write_per_minute": 1_000_000, "read_per_minute": 1_000_000}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=7)) as box:
        yield box


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """An unlimited sandbox, its key exported in KIRIM_API_KEY as a user would."""
    with Sandbox(SandboxConfig(seed=11, **UNLIMITED)) as running:
        monkeypatch.setenv("KIRIM_API_KEY", running.token)
        yield running


def phone(n: int) -> str:
    """A valid Indonesian mobile number in E.164, distinct for each n."""
    return f"+62812{n:08d}"


def write_contacts(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def contacts_file(path: Path, n: int, *, invalid: int = 0, duplicates: int = 0) -> Path:
    """n valid contacts, then ``invalid`` bad phones, then ``duplicates`` repeats of row 1."""
    rows = [
        {"Phone": phone(i), "Name": f"Contact {i}", "Email": f"c{i}@example.com", "City": "Jakarta"}
        for i in range(1, n + 1)
    ]
    rows += [{"Phone": "12", "Name": f"Bad {i}", "Email": "", "City": ""} for i in range(invalid)]
    rows += [
        {"Phone": phone(1).replace("+62", "0"), "Name": "Again", "Email": "", "City": ""}
        for _ in range(duplicates)
    ]
    return write_contacts(path, rows)
