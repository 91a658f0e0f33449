"""The Python API: ``importer.run``, ``importer.run_async`` and ``importer.plan``.

What an orchestrator (Airflow, Dagster, Prefect, a Kubernetes CronJob driven by Python)
calls instead of the command line::

    result = importer.run("contacts.csv", default_region="ID", on_existing="update",
                          state="/srv/crm/kirim-journal.sqlite")
    if not result.ok:
        raise RuntimeError(f"kirim-import: {result.stopped or result.counts}")

Options are the command line's long options with underscores (``default_region``,
``on_existing``, ``max_wait``, ``report_dir``, ``labels=[...]`` for ``--label``, ...), checked
by the same code (``importer.configure``): plain http only to loopback, no credentials in a
base URL. ``api_key=`` gives the key, else ``KIRIM_API_KEY`` is read. A problem found before
anything is sent raises the exception tree of ``importer.errors`` (``UsageError``,
``InputError``, ``JournalError``, ``ReportError``); a run that stops midway returns a result
with ``stopped`` set, never raises. ``config=FILE`` (and ``profile=NAME``) reads the command
line's config file (``importer.configfile``); keywords given win over it.

Safe from any thread, and two runs on two journals at once: a call installs no signal
handler, adds no logging handler (records go to the ``importer`` logger, redacted, for the
host to configure) and prints nothing unless ``progress=True`` (then the closing lines and
the progress as the command line shows them, on standard output and error).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from importer import configfile, configure, exporter, pipeline
from importer.errors import UsageError
from importer.exporter import ExportResult
from importer.options import STDIN, RunOptions
from importer.read import location, remote
from importer.report import status_counts

Source = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True, slots=True)
class PlanResult:
    """What ``plan`` found: ``counts`` by status (every status present), the report folder and
    its summary.json as a dict."""

    exit_code: int  # the command line's: 0 every row valid or a duplicate, 1 some invalid
    counts: dict[str, int]
    report_dir: Path
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True, slots=True)
class RunResult:
    """What ``run`` did: ``counts`` by status (every status present, adding up to
    ``summary["rows_total"]``), why it stopped early (``stopped``, or None), the journal's
    run number and the report folder with its summary.json as a dict."""

    exit_code: int  # the command line's: 0 fine, 1 rows invalid or failed, 3 stopped early
    counts: dict[str, int]
    report_dir: Path
    summary: dict[str, Any]
    stopped: str | None
    run_id: int | None  # None when nothing was journalled (the pre-flight refused)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _source(
    source: Source | None, reading: dict[str, Any]
) -> tuple[Path | str | None, BinaryIO | None]:
    """The path or URL the options name, and the file object to read when given one."""
    if source is None or (isinstance(source, str) and location.is_url(source)):
        return source, None  # a query (sql=...), or a URL: configure checks them
    if isinstance(source, str | os.PathLike):
        return Path(source), None
    if not hasattr(source, "read"):
        raise TypeError(f"source must be a path or a binary file object, not {type(source)}")
    name = getattr(source, "name", None)
    path = Path(name) if isinstance(name, str) and name else STDIN
    if reading.get("format") is None and path.suffix:
        reading["format"] = path.suffix.lower().lstrip(".")
    return path, source


def run_options(source: Source | None, options: dict[str, Any]) -> RunOptions:
    """``run``'s keyword options, checked, as ``RunOptions`` (also the orchestrator recipes'
    way to check a configuration before a run)."""
    try:
        return _run_options(source, options)
    except UsageError as exc:  # a value from config=FILE: named at its line
        raise configfile.located(exc, options, command="run") from None


def _run_options(source: Source | None, options: dict[str, Any]) -> RunOptions:
    options = _with_config(dict(options), command="run")
    options.pop("progress", None)
    if "sandbox" in options:
        raise UsageError(
            "sandbox= is the command line's --sandbox: start importer.sandbox.Sandbox and pass "
            "its base_url and api_key"
        )
    path, stream = _source(source, options)
    built = configure.run_options(source=path, **options)
    if stream is not None:
        built = replace(built, input=replace(built.input, stream=stream))
    return built


async def run_async(source: Source | None = None, **options: Any) -> RunResult:
    """``run`` for a host that has an event loop of its own (it runs on that loop)."""
    progress = bool(options.get("progress", False))
    remote.PROGRESS.set(progress)
    built = run_options(source, options)
    out, err = (sys.stdout, sys.stderr) if progress else (io.StringIO(), io.StringIO())
    summary: dict[str, Any] = {}
    code = await pipeline.run(
        options=built, out=out, err=err, signals=False, log_handler=progress, summary=summary
    )
    run_id = summary.get("run_id")
    return RunResult(
        exit_code=code,
        counts=status_counts(summary),
        report_dir=built.report_dir,
        summary=summary,
        stopped=summary.get("stopped"),
        run_id=run_id if isinstance(run_id, int) else None,
    )


def run(source: Source | None = None, **options: Any) -> RunResult:
    """Import ``source`` (a path, a URL, or a binary file object with ``format=``; or
    ``sql="SELECT ..."`` instead, with the database URI in ``KIRIM_SOURCE_DB``, the variable
    ``db_uri_env=`` names, or ``db_uri=``) into Kirim. Blocks until the run ends; from any
    thread that has no running event loop."""
    return asyncio.run(run_async(source, **options))


def plan(source: Source | None = None, **options: Any) -> PlanResult:
    """Validate ``source`` (or ``sql=``, as for ``run``) and report what a run would do; no
    network but the source's own, and one ``GET /v1/accounts`` when the file has an account
    column and a key is set (``api_key=`` or ``KIRIM_API_KEY``)."""
    given = options
    options = _with_config(dict(options), command="plan")
    progress = bool(options.pop("progress", False))
    remote.PROGRESS.set(progress)
    path, stream = _source(source, options)
    try:
        built = configure.plan_options(source=path, **options)
    except UsageError as exc:  # a value from config=FILE: named at its line
        raise configfile.located(exc, given, command="plan") from None
    if stream is not None:
        built = replace(built, input=replace(built.input, stream=stream))
    code = pipeline.plan(options=built, out=sys.stdout if progress else io.StringIO())
    summary = _summary(built.report_dir)
    return PlanResult(code, status_counts(summary), built.report_dir, summary)


def _with_config(options: dict[str, Any], *, command: str) -> dict[str, Any]:
    """``config=FILE`` (and ``profile=NAME``): the file's options under the keywords given."""
    config, profile = options.pop("config", None), options.pop("profile", None)
    if config is None:
        if profile is not None:
            raise UsageError("profile= needs config=FILE")
        return options
    return configfile.api_options(config, profile=profile, command=command, given=options)


def _summary(report_dir: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((report_dir / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):  # the report could not be written: the plan said so
        return {}
    return data


def export(output: str | os.PathLike[str], **options: Any) -> ExportResult:
    """Write the account's contacts (``label=``: one label's members) to ``output``, CSV or
    Parquet (``format=``, else from the extension); the command line's ``export`` options
    with underscores. An interrupted export (``result.stopped``) resumes when called again
    with the same output. ``transport=`` and ``sleep=`` are the tests' seams."""
    seams = {k: options.pop(k) for k in ("transport", "sleep", "stop") if k in options}
    progress = bool(options.pop("progress", False))
    known = set(inspect.signature(configure.export_options).parameters) - {"output"}
    if unknown := sorted(set(options) - known):  # as run's and plan's: never a TypeError
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    built = configure.export_options(output=Path(output), **options)
    err = sys.stderr if progress else io.StringIO()
    return asyncio.run(exporter.export_async(built, err=err, progress=progress, **seams))
