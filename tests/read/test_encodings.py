"""Legacy code pages: a file charset-normalizer is not sure of is refused with the candidates,
never read as a guess that garbles names; Mac Roman and DOS (cp850) exports read right with
``--encoding``. Files are written in each code page, as Excel on an old Mac and DOS-era
programs save them, holding Indonesian, Spanish and Portuguese names."""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl
import pytest

from importer.cli import main
from importer.errors import InputError
from importer.options import InputOptions
from importer.read.source import open_source

TEXTS = {
    "es": "Phone;Nombre;Ciudad\n+52 1;José Müller;Bogotá\n+52 2;Ñandú Peña;Medellín\n",
    "pt": (
        "Telefone,Nome,Cidade\n+55 11 91234-5678,João Conceição,São Paulo\n"
        "+55 21 98765-4321,Inês Gonçalves,Brasília\n"
        "+55 31 99876-5432,Antônio Araújo,Belo Horizonte\n"
    ),
    "id": "No HP,Nama\n0812,Dédé Suryadi\n0813,Ané Rahayu\n",
    "mix": (
        "No HP;Nama;Kota\r\n08123456701;José Müller;Bogotá\r\n08123456702;Ñandú Peña;São Paulo\r\n"
        "08123456703;João Conceição;Medellín\r\n08123456704;Dewi Açaí;Bandung\r\n"
    ),
}
CODE_PAGES = ("cp1252", "mac_roman", "cp850")


def _names(path: Path, **kw: object) -> list[list[str | None]]:
    reader = open_source(options=InputOptions(path=path, **kw))  # type: ignore[arg-type]
    return [list(row[1:]) for row in pl.concat(list(reader.batches())).rows()]


def _expected(text: str) -> list[list[str | None]]:
    sep = ";" if ";" in text.splitlines()[0] else ","
    return [line.split(sep) for line in text.splitlines()[1:]]


@pytest.mark.parametrize("code_page", CODE_PAGES)
@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_a_legacy_file_is_read_right_or_refused_never_garbled(
    tmp_path: Path, lang: str, code_page: str
) -> None:
    text = TEXTS[lang]
    path = tmp_path / f"{lang}.csv"
    path.write_bytes(text.encode(code_page))
    try:
        names = _names(path)
    except InputError as exc:
        refused = str(exc)
    else:
        assert names == _expected(text)
        return
    assert "not sure of its encoding" in refused
    assert "pass --encoding" in refused


def test_an_unsure_mac_roman_file_is_exit_2_with_the_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pelanggan_mac.csv"
    path.write_bytes(TEXTS["pt"].encode("mac_roman"))
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "pelanggan_mac.csv: not UTF-8, and charset-normalizer is not sure of its encoding" in err
    assert "read its letters differently; pass --encoding" in err
    assert "mac_roman" in err  # the hint names the Mac code page


@pytest.mark.parametrize(("code_page", "lang"), [("mac_roman", "pt"), ("cp850", "id")])
def test_mac_roman_and_cp850_read_right_with_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code_page: str, lang: str
) -> None:
    path = tmp_path / f"{code_page}.csv"
    path.write_bytes(TEXTS[lang].encode(code_page))
    assert _names(path, encoding=code_page) == _expected(TEXTS[lang])
    report = tmp_path / "r"
    argv = ["plan", str(path), "--encoding", code_page, "--report-dir", str(report)]
    assert main([*argv, "--default-region", "ID"]) in (0, 1)
    assert f"encoding='{codecs.lookup(code_page).name}'" in capsys.readouterr().out
    results = pl.read_csv(report / "results.csv", infer_schema=False)
    assert results["name"].to_list() == [row[1] for row in _expected(TEXTS[lang])]
