"""What the reading stage hands on: what was detected about the file, and the column names
the importer reserves for itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What the report appends to the input's own columns in failures.csv. A file that has all four
# is a failures.csv fed back: the reader drops them, so they never become metadata.
FAILURE_COLUMNS = ("row_number", "error_code", "error_message", "retryable")
# A failures.csv fed back keeps its row_number as this column (never metadata), and each
# later failures.csv carries it on, so every retry's results join back to the first file.
SOURCE_ROW = "source_row"
# What a spreadsheet shows in a cell whose formula failed, and writes for it in a CSV export;
# the workbook reader writes a formula error cell the same way. Validation names them.
FORMULA_ERRORS = (
    "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
    "#SPILL!", "#CALC!",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What was detected about the input file."""

    path: Path
    format: str  # csv, tsv, parquet, xlsx, xlsm, xlsb, xls, ods
    columns: tuple[str, ...]  # headers as the file has them (trimmed, BOM removed)
    encoding: str | None = None  # text formats only
    delimiter: str | None = None  # text formats only
    sheet: str | None = None  # workbooks only
    header_line: int | None = None  # the file's line (or the sheet's row) of the header
    notes: tuple[str, ...] = ()  # warnings about the whole file, shown under the Input line
    compression: str | None = None  # gz, bz2, xz, zst: read through it
    shown: str | None = None  # a URL or query, as people see it (``location.shown``)
