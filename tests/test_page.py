"""report.html: written by every plan and run, self-contained, escaped, and checked in a real
headless browser (the DOM after rendering against summary.json, the charts, a screenshot)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from importer import page
from importer.cli import main
from importer.sandbox import Sandbox
from tests import browser
from tests.conftest import contacts_file, phone, write_contacts

XSS = "<img src=x onerror=alert(1)>"
# every attribute through which a page can fetch or point at something
URL_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data"}


class Dom(HTMLParser):
    """What the tests read of a page: every element, the data-count texts, every text node,
    and the ``td`` cells of each table row by the section it is in."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.counts: dict[str, str] = {}
        self.texts: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.isolated: dict[str, list[list[bool]]] = {}  # per td: its text in a <bdi>
        self.ticks: dict[str, list[str]] = {}  # the timeline's axis labels, by axis
        self._count: str | None = None
        self._tick: str | None = None
        self._section = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        if "data-count" in found:
            self._count = found["data-count"]
        if "data-tick" in found:
            self._tick = found["data-tick"]
        if tag == "section":
            self._section = found.get("id") or ""
        elif tag == "tr":
            self.rows.setdefault(self._section, []).append([])
            self.isolated.setdefault(self._section, []).append([])
        elif tag == "td":
            self.rows[self._section][-1].append("")
            self.isolated[self._section][-1].append(False)
        elif tag == "bdi" and self.isolated.get(self._section, [[]])[-1]:
            self.isolated[self._section][-1][-1] = True

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._count is not None:
            self.counts[self._count] = data
            self._count = None
        if self._tick is not None:
            self.ticks.setdefault(self._tick, []).append(data)
            self._tick = None
        if self.rows.get(self._section):
            row = self.rows[self._section][-1]
            if row:
                row[-1] += data

    def ids(self, tag: str) -> set[str]:
        return {a["id"] for t, a in self.elements if t == tag and a.get("id")}

    def table(self, section: str) -> list[list[str]]:
        """The section's data rows (cells of ``td``; header rows left out)."""
        return [r for r in self.rows.get(section, []) if r]


def summary(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "summary.json").read_text())
    return data


def expected_counts(s: dict[str, Any]) -> dict[str, int]:
    """rows_total and every status key summary.json has."""
    keys = {"rows_total", "valid", "created", "updated", "exists", "unchanged"}
    keys |= {"duplicate_in_file", "invalid", "failed"}
    return {k: v for k, v in s.items() if k in keys}


def assert_self_contained(text: str) -> None:
    dom = Dom(text)
    tags = {t for t, _ in dom.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    for tag, attrs in dom.elements:
        assert not URL_ATTRIBUTES & attrs.keys(), (tag, attrs)
        assert not any("url(" in (v or "") for v in attrs.values())
    assert "url(" not in text
    assert "@import" not in text
    csp = [a for t, a in dom.elements if t == "meta" and a.get("http-equiv")]
    assert csp
    assert "default-src 'none'" in (csp[0].get("content") or "")


def results(reports: Path) -> list[dict[str, str]]:
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_with_every_kind_of_row(box: Sandbox, tmp: Path) -> Path:
    """A run with rows created (national, +, 00), a fixed line, invalid rows (one named like
    an HTML tag), a duplicate; returns the report folder."""
    rows = [{"Phone": phone(i), "Name": f"Contact {i}"} for i in range(1, 31)]
    rows += [
        {"Phone": "081299990001", "Name": "National"},
        {"Phone": "006281299990002", "Name": "Zero zero"},
        {"Phone": "+62215550123", "Name": "Jakarta office"},
        {"Phone": "12", "Name": XSS},
        {"Phone": "0812", "Name": "Too short"},
        {"Phone": phone(3), "Name": "Again"},
    ]
    file = write_contacts(tmp / "in.csv", rows)
    reports = tmp / "r"
    code = main(
        ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
         "--state", str(tmp / "j.sqlite"), "--default-region", "ID"]
    )  # fmt: skip
    assert code == 1
    return reports


def test_a_runs_page_in_a_real_browser(
    sandbox: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chromium = browser.require()
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token)
    reports = run_with_every_kind_of_row(sandbox, tmp_path)
    assert f"Report page: {reports / 'report.html'}" in capsys.readouterr().out
    assert sorted(p.name for p in reports.iterdir()) == [
        "failures.csv", "report.html", "results.csv", "summary.json"
    ]  # fmt: skip
    text = (reports / "report.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    assert sandbox.token not in text
    dom = Dom(browser.dump_dom(chromium, reports / "report.html"))
    s = summary(reports)
    assert {k: int(v) for k, v in dom.counts.items()} == expected_counts(s)
    assert dom.counts["created"] == "33"
    assert {"status-bar", "reasons-chart", "timeline-chart"} <= dom.ids("svg")
    assert "write-limit" in dom.ids("line")
    assert any(t == "path" for t, _ in dom.elements)  # the creates per second
    # the name is text: no element was made of it, the text node is the name itself
    assert XSS in dom.texts
    assert not any(t == "img" for t, _ in dom.elements)
    bad = dom.table("rows")
    assert [(r[0], r[1], r[2], r[3]) for r in bad] == [
        ("34", "12", XSS, "too_short"),
        ("35", "0812", "Too short", "too_short"),
    ]
    assert "first rows: 34, 35" in dom.texts
    # how phones were read: the same counts as results.csv
    rows = results(reports)
    labels = {"plus_sign": "plus sign (+…)", "idd_00": "00 prefix", "default": "--default-region"}
    phones = {r[0]: int(r[1].replace(",", "")) for r in dom.table("phones")}
    sources = Counter(labels[r["region_source"]] for r in rows if r["region_source"])
    types = Counter(page.NUMBER_TYPES[r["number_type"]] for r in rows if r["number_type"])
    assert phones == {**sources, **types}
    assert phones["00 prefix"] == 1
    assert phones["fixed line"] == 1
    # a screenshot that is a page, not a blank: many colours, the created green in quantity
    shot = browser.screenshot(chromium, reports / "report.html", tmp_path / "page.png")
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    by_colour = {c: n for n, c in colours}
    total = sum(by_colour.values())
    assert len(by_colour) > 50
    assert max(by_colour.values()) < 0.9 * total
    assert by_colour.get((0x2E, 0x9D, 0x5B), 0) > 2_000  # the status bar and the created card


def test_a_plans_page_in_a_real_browser(tmp_path: Path) -> None:
    chromium = browser.require()
    file = contacts_file(tmp_path / "in.csv", 12, invalid=2, duplicates=1)
    reports = tmp_path / "plan"
    assert main(["plan", str(file), "--report-dir", str(reports)]) == 1
    dom = Dom(browser.dump_dom(chromium, reports / "report.html"))
    assert {k: int(v) for k, v in dom.counts.items()} == expected_counts(summary(reports))
    assert dom.counts["valid"] == "12"
    assert "timeline-chart" not in dom.ids("svg")  # a plan sends nothing


def test_the_table_keeps_the_first_thousand_rows_and_says_so(tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "in.csv", 5, invalid=1_203)
    reports = tmp_path / "plan"
    assert main(["plan", str(file), "--report-dir", str(reports)]) == 1
    text = (reports / "report.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    dom = Dom(text)
    shown = dom.table("rows")
    assert len(shown) == page.MAX_ROWS
    assert [r[0] for r in shown[:2]] == ["6", "7"]
    assert "The first 1,000 of 1,203; failures.csv has them all." in dom.texts
    assert f"first rows: {', '.join(str(n) for n in range(6, 11))}…" in dom.texts
    assert dom.counts == {"rows_total": "1208", "valid": "5", "duplicate_in_file": "0",
                          "invalid": "1203", "failed": "0"}  # fmt: skip


def test_the_page_shows_every_status_the_summary_has() -> None:
    """A status the summary gains (the nightly sync's ``unchanged``) is on the page too."""
    counts = {"rows_total": 5, "created": 1, "unchanged": 3, "failed": 1}
    html = page.render(
        summary={**counts, "reasons": {"x<y": 1}, "exit_code": 1, "stopped": None},
        counts=counts,
        facts=page.Facts(),
        context=page.Context(),
        closing="5 rows",
    )
    dom = Dom(html)
    assert dom.counts == {k: str(v) for k, v in counts.items()}
    assert "x<y" in dom.texts  # a reason code is text too
    assert_self_contained(html)


def test_cells_isolate_bidirectional_text_and_number_types_are_words(tmp_path: Path) -> None:
    """A name with a right-to-left override, an Arabic name, and numbers of types named by
    abbreviations (UAN, VoIP): every cell of the rows table holds its text in a ``<bdi>``, so
    no cell's direction reorders what stands after it, and the types read as words."""
    chromium = browser.require()
    flipped, arabic = "\u202eevil.exe", "محمد علي"
    rows = [
        {"Phone": "+628071123456", "Name": "Universal"},  # a UAN in Indonesia
        {"Phone": "+445612345678", "Name": "Voice over IP"},  # a VoIP number in the UK
        {"Phone": "12", "Name": flipped},
        {"Phone": "\u05d0 0812", "Name": arabic},
    ]
    reports = tmp_path / "plan"
    assert main(["plan", str(write_contacts(tmp_path / "in.csv", rows)), "--report-dir",
                 str(reports)]) == 1  # fmt: skip
    dom = Dom(browser.dump_dom(chromium, reports / "report.html"))
    table = dom.table("rows")
    assert [r[2] for r in table] == [flipped, arabic]
    isolated = [r for r in dom.isolated["rows"] if r]
    assert isolated == [[False, True, True, True, True]] * 2  # all but the row number
    phones = {r[0]: r[1] for r in dom.table("phones")}
    assert {"universal access number", "internet telephony (VoIP)"} <= phones.keys()
    assert not {"uan", "voip"} & phones.keys()
    assert all(row == [True, False, False] for row in dom.isolated["phones"] if row)


def test_every_number_type_has_words() -> None:
    import phonenumbers

    kinds = {k.lower() for k in vars(phonenumbers.PhoneNumberType) if k.isupper()}
    assert kinds == set(page.NUMBER_TYPES)
    words = page.NUMBER_TYPES.values()
    assert all(" " in w or w in ("mobile", "pager", "voicemail") for w in words)


def test_the_timeline_is_scaled_to_the_run_and_its_ticks_never_repeat(
    box: Sandbox, tmp_path: Path
) -> None:
    """At 1,000,000 writes/min (16,667/s) a short run creating a few hundred a second is
    drawn at its own scale, the limit told in words; a run shorter than a second has x ticks
    in hundredths, each label once."""
    chromium = browser.require()
    reports = tmp_path / "r"
    code = main(["run", str(contacts_file(tmp_path / "in.csv", 20)), "--base-url", box.base_url,
                 "--report-dir", str(reports), "--state", str(tmp_path / "j.sqlite"),
                 "--default-region", "ID"])  # fmt: skip
    assert code == 0
    dom = Dom(browser.dump_dom(chromium, reports / "report.html"))
    assert "write-limit" not in dom.ids("line")
    assert "write-limit-above" in dom.ids("p")
    y_top = float(dom.ticks["y"][-1].replace(",", ""))
    assert y_top < 16_667 / 4  # old: the axis ran to 17,500 with the run a sliver at its foot
    for axis in ("x", "y"):
        assert len(set(dom.ticks[axis])) == len(dom.ticks[axis]) >= 3, dom.ticks[axis]
