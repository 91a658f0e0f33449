"""How a source is named: URLs and URIs without credentials, the journal's identity of a
source, Google Sheets links, and which URLs may be read at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer import configure
from importer.errors import UsageError
from importer.options import InputOptions
from importer.read import location


def test_urls_are_shown_without_credentials_or_query_strings() -> None:
    url = "https://etl:S3cret@files.example.com:8443/exports/contacts.csv?sig=abc&exp=1"
    assert location.redact_url(url) == (
        "https://files.example.com:8443/exports/contacts.csv?[redacted]"
    )
    assert location.redact_url("s3://crm/nightly/contacts.csv.gz") == (
        "s3://crm/nightly/contacts.csv.gz"
    )
    abfs = "abfs://exports@crmdata.dfs.core.windows.net/nightly/contacts.csv"
    assert location.redact_url(abfs) == abfs  # the container, not a user
    uri = "postgresql://kirim:pw@db.internal:5432/crm?sslmode=require"
    assert location.redact_db_uri(uri) == "postgresql://kirim@db.internal:5432/crm"
    assert location.redact_db_uri("sqlite:////srv/crm.db") == "sqlite:////srv/crm.db"


def test_the_journal_knows_a_presigned_url_by_its_object_not_its_signature() -> None:
    def options(url: str) -> InputOptions:
        return configure.input_options(source=url)

    monday = options("https://b.s3.amazonaws.com/c.csv?X-Amz-Signature=111&X-Amz-Date=1")
    tuesday = options("https://b.s3.amazonaws.com/c.csv?X-Amz-Signature=222&X-Amz-Date=2")
    assert location.identity(monday) == location.identity(tuesday)
    assert location.identity(monday) == "https://b.s3.amazonaws.com/c.csv"
    assert location.shown(monday) == "https://b.s3.amazonaws.com/c.csv?[redacted]"
    assert monday.path == Path("c.csv")
    azure = options("https://a.blob.core.windows.net/c/x.csv?sv=2024&se=1&sig=abc&version=3")
    assert location.identity(azure) == (
        "https://a.blob.core.windows.net/c/x.csv?version=sha256:4e07408562bedb8b"
    )
    # a parameter that signs nothing may still be a secret: kept as a digest, never in clear
    keyed = [options(f"https://crm.example.com/c.csv?api_key={k}&X-Amz-Signature=1") for k in
             ("Sekr1t-A", "Sekr1t-B")]  # fmt: skip
    assert "Sekr1t" not in location.identity(keyed[0])
    assert location.identity(keyed[0]) != location.identity(keyed[1])
    tabs = [options(f"https://docs.google.com/spreadsheets/d/X/edit#gid={n}") for n in (1, 2)]
    assert location.identity(tabs[0]) != location.identity(tabs[1])


def test_a_query_is_known_by_its_text_and_its_uri_without_the_password() -> None:
    def options(sql: str, password: str) -> InputOptions:
        return configure.input_options(
            source=None, sql=sql, db_uri=f"postgresql://u:{password}@h/crm"
        )

    a = options("SELECT phone FROM c;", "Pw-Monday")
    b = options("SELECT phone FROM c", "Pw-Tuesday")
    c = options("SELECT phone FROM d", "Pw-Monday")
    assert location.identity(a) == location.identity(b) != location.identity(c)
    assert "Pw-Monday" not in location.identity(a) + location.shown(a) + repr(a)
    assert location.shown(a) == "SQL query on postgresql://u@h/crm"


@pytest.mark.parametrize(
    ("link", "export"),
    [
        ("https://docs.google.com/spreadsheets/d/1AbC_d-9/edit?usp=sharing",
         "https://docs.google.com/spreadsheets/d/1AbC_d-9/export?format=csv&gid=0"),
        ("https://docs.google.com/spreadsheets/d/1AbC_d-9/edit#gid=424242",
         "https://docs.google.com/spreadsheets/d/1AbC_d-9/export?format=csv&gid=424242"),
        ("https://docs.google.com/spreadsheets/d/1AbC_d-9/edit?gid=7#gid=7",
         "https://docs.google.com/spreadsheets/d/1AbC_d-9/export?format=csv&gid=7"),
    ],
)  # fmt: skip
def test_a_google_sheets_link_is_read_through_its_csv_export(link: str, export: str) -> None:
    options = configure.input_options(source=link)
    assert options.url == export
    assert options.format == "csv"
    assert options.path == Path("sheet.csv")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://files.example.com/c.csv", "cannot read ftp:// URLs"),
        ("http://files.example.com/c.csv", "plain http is only allowed to loopback"),
        ("s3:///c.csv", "names no host or bucket"),
    ],
)
def test_urls_that_cannot_be_read_are_usage_errors(url: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        configure.input_options(source=url)


def test_plain_http_to_loopback_and_a_local_path_with_a_colon_are_fine() -> None:
    assert configure.input_options(source="http://127.0.0.1:8080/c.csv").url is not None
    local = configure.input_options(source="exports/2024-01-01T10:00.csv")
    assert local.url is None
    assert local.path == Path("exports/2024-01-01T10:00.csv")
