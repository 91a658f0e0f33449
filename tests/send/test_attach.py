"""Which contacts a ``bulk_label`` call skipped, and why (``send.attach``), through httpx's
``transport=`` seam: the search's odd turns that the sandbox does not take."""

from __future__ import annotations

import asyncio
import json

import httpx

from importer.send.attach import DELETED, OTHER_ORG, Attacher, Missed
from importer.send.client import KirimClient
from importer.send.limiter import TokenBucket
from importer.send.retry import RetryPolicy, Sender
from importer.send.stop import Stop
from tests.fakes import FakeClock
from tests.send.test_client import KEY, error

ACCOUNT = "106540352242922"
CONTACTS = {"ctc_a": "+628121", "ctc_b": "+628122", "ctc_c": "+628123", "ctc_d": "+628124"}


class Kirim:
    """``bulk_label`` answered from a list, in order; a lookup by phone from a dict."""

    def __init__(self, bulk: list[httpx.Response], found: dict[str, list[dict[str, str]]]) -> None:
        self.bulk, self.found = bulk, found
        self.asked: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/bulk_label"):
            self.asked.append(json.loads(request.content)["contact_ids"])
            return self.bulk.pop(0)
        return httpx.Response(200, json={"data": self.found.get(request.url.params["phone"], [])})


def answer(applied: int, cross_org: int = 0, team: int = 0) -> httpx.Response:
    data = {"applied": applied, "skipped_cross_org": cross_org, "skipped_team_mismatch": team}
    return httpx.Response(200, json={"data": data})


def attach(kirim: Kirim) -> dict[str, Missed]:
    async def go() -> dict[str, Missed]:
        clock, stop = FakeClock(), Stop()
        sender = Sender(stop=stop, policy=RetryPolicy(max_attempts=1), sleep=clock.sleep)
        bucket = TokenBucket(per_minute=6000, clock=clock, sleep=clock.sleep, stop=stop)
        async with KirimClient(
            base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(kirim)
        ) as client:
            attacher = Attacher(
                client=client, sender=sender, writes=bucket, reads=bucket, account=ACCOUNT
            )
            return await attacher.attach("lbl_1", CONTACTS)

    return asyncio.run(go())


def test_a_search_call_that_fails_leaves_its_contacts_unknown_never_labelled() -> None:
    kirim = Kirim([answer(3, cross_org=1), error(400, "invalid_field_value")], {})
    missed = attach(kirim)
    assert set(missed) == set(CONTACTS)  # none counted as labelled: a rerun tries them again
    assert all("could not be found out (400 invalid_field_value)" in m.why for m in missed.values())
    assert not any(m.deleted for m in missed.values())


def test_counts_that_no_longer_add_up_make_it_ask_for_the_other_half_too() -> None:
    kirim = Kirim(
        [answer(3, cross_org=1), answer(0, cross_org=2), answer(2)],  # a and b both gone now
        {"+628122": [{"id": "ctc_new", "phone_number": "+628122"}]},  # b's phone: another one
    )
    assert attach(kirim) == {"ctc_a": DELETED, "ctc_b": DELETED}
    assert kirim.asked == [list(CONTACTS), ["ctc_a", "ctc_b"], ["ctc_c", "ctc_d"]]


def test_a_skipped_contact_that_still_exists_is_told_as_kirim_counted_it() -> None:
    kirim = Kirim(
        [answer(3, cross_org=1), answer(2), answer(1)],  # d's own count: the difference
        {"+628124": [{"id": "ctc_d", "phone_number": "+628124"}]},
    )
    assert attach(kirim) == {"ctc_d": OTHER_ORG}
    assert kirim.asked[1:] == [["ctc_a", "ctc_b"], ["ctc_c"]]
