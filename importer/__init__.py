"""kirim-import: bulk contact importer for the Kirim WhatsApp Business API.

The library is the product; the command line is one way to call it::

    import importer

    result = importer.run("contacts.csv", default_region="ID", on_existing="update")
    result.exit_code, result.counts, result.stopped, result.report_dir

``run``, ``run_async`` and ``plan`` are in ``importer.api`` (loaded on first use, so the
sandbox and the command line's ``--help`` stay quick); the exceptions in ``importer.errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from importer.errors import (
    ImporterError,
    InputError,
    JournalError,
    ReportError,
    StopRun,
    UsageError,
)

__version__ = "0.5.0"

if TYPE_CHECKING:
    from importer.api import PlanResult, RunResult, export, plan, run, run_async
    from importer.exporter import ExportResult

__all__ = [
    "ExportResult",
    "ImporterError",
    "InputError",
    "JournalError",
    "PlanResult",
    "ReportError",
    "RunResult",
    "StopRun",
    "UsageError",
    "__version__",
    "export",
    "plan",
    "run",
    "run_async",
]
_API = frozenset({"PlanResult", "RunResult", "plan", "run", "run_async", "export", "ExportResult"})


def __getattr__(name: str) -> Any:
    if name in _API:
        from importer import api

        return getattr(api, name)
    raise AttributeError(f"module 'importer' has no attribute {name!r}")
