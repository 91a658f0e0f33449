"""The Python API as an orchestrator calls it: ``importer.run`` from worker threads, two at
once, ``run_async`` on the host's loop, ``plan``; the CLI's checks hold; nothing printed, no
signal handler installed, logs through the ``importer`` logger, redacted."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import signal
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import importer
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, contacts_file, phone

README = Path(__file__).resolve().parents[1] / "README.md"


def options(box: Sandbox, tmp: Path, name: str) -> dict[str, Any]:
    return {
        "base_url": box.base_url, "api_key": box.token, "report_dir": tmp / name,
        "state": tmp / f"{name}.sqlite", "default_region": "ID",
    }  # fmt: skip


def in_thread(work: Callable[[], Any]) -> Any:
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(work()))
    thread.start()
    thread.join(timeout=60)
    assert got, "the call did not return"
    return got[0]


def test_run_from_a_worker_thread_returns_a_result_and_prints_nothing(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 5, invalid=1, duplicates=1)
    before = signal.getsignal(signal.SIGINT)
    result = in_thread(lambda: importer.run(file, **options(sandbox, tmp_path, "r")))
    assert isinstance(result, importer.RunResult)
    assert (result.exit_code, result.ok, result.stopped) == (1, False, None)
    assert result.counts == {
        "created": 5, "updated": 0, "unchanged": 0, "exists": 0, "duplicate_in_file": 1,
        "invalid": 1, "failed": 0,
    }  # fmt: skip
    assert sum(result.counts.values()) == result.summary["rows_total"] == 7
    assert result.report_dir == tmp_path / "r"
    assert (result.report_dir / "results.csv").is_file()
    assert isinstance(result.run_id, int)
    assert signal.getsignal(signal.SIGINT) is before
    assert capsys.readouterr() == ("", "")
    assert len(sandbox.creations_by_phone()) == 5


def test_two_runs_at_once_on_two_journals(tmp_path: Path) -> None:
    config = SandboxConfig(seed=2, latency_ms=(2.0, 5.0), **UNLIMITED)
    with Sandbox(config) as one, Sandbox(config) as two:
        a = contacts_file(tmp_path / "a.csv", 300)
        b = contacts_file(tmp_path / "b.csv", 200)
        results: dict[str, importer.RunResult] = {}
        threads = [
            threading.Thread(
                target=lambda n=name, f=file, box=box: results.__setitem__(
                    n, importer.run(f, **options(box, tmp_path, n))
                )
            )
            for name, file, box in (("a", a, one), ("b", b, two))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert results["a"].counts["created"] == 300
        assert results["b"].counts["created"] == 200
        assert one.creations_by_phone() == {phone(i): 1 for i in range(1, 301)}
        assert two.creations_by_phone() == {phone(i): 1 for i in range(1, 201)}


def test_the_command_lines_checks_hold_for_the_api(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = contacts_file(tmp_path / "in.csv", 2)
    common = {"api_key": sandbox.token, "report_dir": tmp_path / "r"}
    with pytest.raises(importer.UsageError, match="plain http is only allowed to loopback"):
        importer.run(file, base_url="http://example.com/v1", **common)
    with pytest.raises(importer.UsageError, match="credentials"):
        importer.run(file, base_url="https://u:p@api.example.com/v1", **common)
    with pytest.raises(importer.UsageError, match="unknown option"):
        importer.run(file, base_url=sandbox.base_url, defualt_region="ID", **common)
    with pytest.raises(importer.UsageError, match="--max-attempts"):
        importer.run(file, base_url=sandbox.base_url, max_attempts=0, **common)
    with pytest.raises(importer.UsageError, match="--concurrency takes a whole number"):
        importer.run(file, base_url=sandbox.base_url, concurrency="8", **common)
    with pytest.raises(importer.UsageError, match="sandbox= is the command line's"):
        importer.run(file, sandbox=True, **common)
    monkeypatch.setenv("KIRIM_BASE_URL", "http://10.1.2.3/v1")  # never over plain http
    with pytest.raises(importer.UsageError, match="plain http"):
        importer.run(file, **common)
    with pytest.raises(importer.InputError, match="no such file"):
        importer.run(tmp_path / "missing.csv", base_url=sandbox.base_url, **common)
    assert sandbox.request_count("POST", "/v1/{phone_number_id}/contacts") == 0


def test_logs_go_to_the_importer_logger_redacted(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Even after the command line ran in the same process (its handler is put back), and
    httpx's own request lines (a looked-up phone in each URL) are redacted too."""
    file = contacts_file(tmp_path / "in.csv", 2)
    from importer.cli import main

    assert main(["run", str(file), "--sandbox", "--report-dir", str(tmp_path / "cli")]) == 0
    sandbox.set_faults(error_message=f"bad key {sandbox.token} for {phone(1)}")
    with caplog.at_level(logging.INFO):
        result = importer.run(file, **options(sandbox, tmp_path, "r"))
    assert result.counts["failed"] == 2
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "importer")
    assert "invalid_field_value" in logged
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in everything  # httpx's lines reached the host's handlers
    assert sandbox.token not in everything
    for digits in (phone(1), phone(1)[1:], phone(2)[1:]):
        assert digits not in everything  # contacts masked unless verbose, in URLs too


def test_a_run_that_stops_midway_returns_why_and_never_raises(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.set_faults(retry_after_s=50)
    file = contacts_file(tmp_path / "in.csv", 3)
    result = importer.run(file, max_wait=10, **options(sandbox, tmp_path, "r"))
    assert result.exit_code == 3
    assert result.stopped is not None
    assert "Kirim asks to wait 50 s" in result.stopped
    assert result.counts["failed"] == 3


def test_run_async_on_the_hosts_loop_and_a_file_object_as_source(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    data = contacts_file(tmp_path / "in.csv", 4).read_bytes()

    async def host() -> importer.RunResult:
        ticks = 0

        async def heartbeat() -> None:  # the host's own work goes on meanwhile
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        beat = asyncio.create_task(heartbeat())
        result = await importer.run_async(
            io.BytesIO(data), format="csv", **options(sandbox, tmp_path, "r")
        )
        beat.cancel()
        assert ticks > 1
        return result

    result = asyncio.run(host())
    assert result.counts["created"] == 4


def test_plan(tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "in.csv", 3, invalid=2)
    result = importer.plan(file, report_dir=tmp_path / "p")
    assert isinstance(result, importer.PlanResult)
    assert (result.exit_code, result.counts["valid"], result.counts["invalid"]) == (1, 3, 2)


def _recipes() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("orchestrator", ["airflow", "dagster", "prefect", "plain"])
def test_the_readmes_recipes_run_with_a_stand_in_orchestrator(
    orchestrator: str,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each recipe's code, as the README shows it, under a stand-in for its orchestrator
    (decorators that return the function): the task imports and fails on a bad result."""
    recipe = next(code for code in _recipes() if f"# {orchestrator}" in code.splitlines()[0])

    def passthrough(*args: Any, **kwargs: Any) -> Any:
        if args and callable(args[0]) and not kwargs:
            return args[0]
        return lambda fn: fn

    class Failure(Exception):  # dagster's takes a description
        def __init__(self, description: str) -> None:
            super().__init__(description)

    stand_ins = {
        "airflow": {"airflow.decorators": {"task": passthrough}},
        "dagster": {"dagster": {"op": passthrough, "Failure": Failure}},
        "prefect": {"prefect": {"task": passthrough, "flow": passthrough}},
        "plain": {},
    }[orchestrator]
    for name, attributes in stand_ins.items():
        for part in range(1, name.count(".") + 2):
            monkeypatch.setitem(sys.modules, ".".join(name.split(".")[:part]),
                                types.ModuleType(name))  # fmt: skip
        module = types.ModuleType(name)
        for attribute, value in attributes.items():
            setattr(module, attribute, value)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token)
    monkeypatch.setenv("KIRIM_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KIRIM_JOURNAL", str(tmp_path / "volume" / "kirim-journal.sqlite"))
    monkeypatch.chdir(tmp_path)
    contacts_file(tmp_path / "contacts.csv", 3)
    namespace: dict[str, Any] = {}
    exec(compile(recipe, f"README:{orchestrator}", "exec"), namespace)
    task = namespace["import_contacts"]
    result = task("contacts.csv")
    assert result["created"] == 3
    assert (tmp_path / "volume" / "kirim-journal.sqlite").is_file()
    (tmp_path / "broken.csv").write_text("Phone,Name\n12,Bad\n")
    with pytest.raises(Exception, match="kirim-import"):
        task("broken.csv")
