"""The exception tree: every whole-run problem, in one place.

Per-row outcomes are values (a ``Status`` and an error code on the row), never exceptions.
What ends a command early is one of these; ``str(exc)`` is the whole message for a person::

    ImporterError            anything that ends a command early
    ├── UsageError           an option's value cannot be used (exit 2, nothing read or sent)
    ├── InputError           the input file or the options cannot be used (exit 2, nothing sent)
    │   └── Refused          a guard rail refused the run before sending (--max-invalid, the
    │                        shrink guard, --max-detach): ``guard`` names it, ``facts`` holds
    │                        its numbers
    ├── StopRun              the server said no more can succeed: key, account, answers we
    │                        cannot use before the first write (exit 3)
    ├── JournalError         SQLite cannot open, read or write the journal: exit 2 at the start
    │                        (nothing sent); mid-run it stops the run like a StopRun (exit 3)
    └── ReportError          the report folder cannot be created (exit 2, nothing sent); a
                             write that fails mid-run stops the run (exit 3), never a traceback

``cli.main`` is the only place that turns them into exit codes; the Python API
(``importer.run``, ``importer.plan``) raises them when nothing was sent, and returns a result
with ``stopped`` set for a run that stopped midway.
"""

from __future__ import annotations


class ImporterError(Exception):
    """A problem that ends the command; ``str(exc)`` is the whole message for a person."""


class UsageError(ImporterError):
    """An option's value cannot be used; the message names the option as the CLI spells it."""


class InputError(ImporterError):
    """The input cannot be used: names the file, and the line, row or column where known."""


class Refused(InputError):
    """A guard rail refused the run before anything was sent (``importer.guards``): ``guard``
    names it (``max_invalid``, ``shrink``, ``max_detach``), ``facts`` holds the numbers the
    message gives."""

    def __init__(self, message: str, *, guard: str, facts: dict[str, object]) -> None:
        super().__init__(message)
        self.guard = guard
        self.facts = facts


class StopRun(ImporterError):
    """The server answered something that means no further request can succeed."""


class JournalError(ImporterError):
    """SQLite could not open, read or write the journal (locked, unwritable, full, damaged)."""


class ReportError(ImporterError):
    """The report folder or its files cannot be written (permission, disk full, removed)."""
