"""Reading streams: an unquoted text file is read in blocks of whole lines and a Parquet file a
batch at a time, and either way every row comes back once, in order, numbered, in batches of
``batch_size`` rows. (How flat memory stays is measured by ``bench/streaming.py``.)"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from importer.options import InputOptions
from importer.read.source import open_source
from importer.read.text import _BLOCK


def test_unquoted_file_bigger_than_a_block_reads_every_row_in_order(tmp_path: Path) -> None:
    # ~5 MB: lines of many lengths cross the 2 MiB block edges; CRLF, blank lines (Excel's
    # ";;;" and an empty one) between rows, and no newline after the last line
    lines = [f"08{i:010d};{'Nama ' * (i % 7)}{i};{'x' * (i % 13)}" for i in range(120_000)]
    for at in (5, 40_000, 99_999):
        lines.insert(at, ";;" if at != 40_000 else "")
    # blank lines of every kind where the first block ends, so the next one starts with them
    size = 0  # bytes after the header line
    edge = next(i for i, line in enumerate(lines) if (size := size + len(line) + 2) > _BLOCK)
    lines[edge:edge] = ["", "   ", ";;;;;", ";"] * 25  # ~300 bytes over the block's end
    path = tmp_path / "big.csv"
    path.write_bytes(("Phone;Name;Note\r\n" + "\r\n".join(lines)).encode())
    assert path.stat().st_size > 2 * (2 << 20)
    reader = open_source(options=InputOptions(path=path, batch_size=10_000))
    batches = list(reader.batches())
    assert reader.rows == 120_000
    # the first 1,000 rows come alone (the run starts sending early), then whole batches
    assert [b.height for b in batches[:3]] == [1_000, 9_000 - 1, 10_000]  # a blank in the first
    df = pl.concat(batches)
    assert df["row_number"].to_list() == list(range(1, 120_001))
    assert df["Phone"].to_list() == [f"08{i:010d}" for i in range(120_000)]
    assert df["Name"][119_999] == "Nama " * (119_999 % 7) + "119999"
    assert df["Note"][0] is None
    assert df["Note"][12] == "x" * 12


def test_parquet_reads_a_batch_at_a_time_across_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    numbers = range(25_000)
    frame = pl.DataFrame(
        {"Phone": [6281200000000 + i for i in numbers], "Name": [f"N{i}" for i in numbers]}
    )
    frame.write_parquet(path, row_group_size=4_000)
    reader = open_source(options=InputOptions(path=path, batch_size=3_000))
    batches = list(reader.batches())
    assert reader.rows == 25_000
    assert max(b.height for b in batches) <= 3_000
    df = pl.concat(batches)
    assert df["row_number"].to_list() == list(range(1, 25_001))
    assert df["Phone"].to_list() == [str(6281200000000 + i) for i in range(25_000)]
    assert df["Name"][24_999] == "N24999"
