"""The suppression list against the real MongoDB wire-protocol server of the harness, one
database per test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stackyard.email.suppressions import SuppressionList
from stackyard.problems import UnprocessableContent


@pytest.fixture
async def suppressions(db: Any) -> SuppressionList:
    listed = SuppressionList(db)
    await listed.ensure_indexes()
    return listed


async def test_an_added_address_is_found_in_any_spelling(suppressions: SuppressionList) -> None:
    added = await suppressions.add(
        "Ana <Ana@EXAMPLE.com>", "bounce", detail="550 5.1.1 no such user", provider="ses", email_id="em_1"
    )
    assert (added.address, added.reason, added.detail, added.provider, added.email_id) == (
        "ana@example.com",
        "bounce",
        "550 5.1.1 no such user",
        "ses",
        "em_1",
    )
    found = await suppressions.check(["ANA@example.com", "bo@example.com", "Someone <ana@example.COM>"])
    assert found == {"ana@example.com": added}
    assert await suppressions.check([]) == {}
    assert await suppressions.check(["bo@example.com"]) == {}


async def test_adding_again_updates_the_reason_and_keeps_the_first_time(suppressions: SuppressionList) -> None:
    first = await suppressions.add("ana@example.com", "bounce", provider="ses")
    await asyncio.sleep(0.01)
    second = await suppressions.add("ANA@example.com", "complaint", provider="resend", detail="abuse")
    assert second.created_at == first.created_at
    assert (second.reason, second.provider, second.detail) == ("complaint", "resend", "abuse")
    assert (await suppressions.check(["ana@example.com"]))["ana@example.com"] == second


async def test_concurrent_first_adds_of_one_address_all_succeed(suppressions: SuppressionList) -> None:
    added = await asyncio.gather(*(suppressions.add("cy@example.com", "complaint") for _ in range(8)))
    assert {s.address for s in added} == {"cy@example.com"}
    page = await suppressions.page()
    assert [s.address for s in page.items] == ["cy@example.com"]


async def test_a_manual_add_of_an_invalid_address_is_refused(suppressions: SuppressionList) -> None:
    with pytest.raises(UnprocessableContent) as refused:
        await suppressions.add("ana@@example", "manual")
    assert "not a valid email address" in refused.value.detail
    with pytest.raises(UnprocessableContent):
        await suppressions.add("  ", "bounce")
    with pytest.raises(UnprocessableContent):
        await suppressions.add("ana@example.com", "spam")
    assert (await suppressions.page()).items == []


async def test_a_provider_reported_address_that_does_not_validate_is_kept(suppressions: SuppressionList) -> None:
    added = await suppressions.add(" Odd..Name@Example.com ", "bounce", provider="postmark")
    assert added.address == "odd..name@example.com"
    assert set(await suppressions.check(["odd..name@EXAMPLE.com"])) == {"odd..name@example.com"}


async def test_remove_takes_an_address_off_once(suppressions: SuppressionList) -> None:
    await suppressions.add("ana@example.com", "manual")
    assert await suppressions.remove("Ana <ANA@example.com>")
    assert not await suppressions.remove("ana@example.com")
    assert await suppressions.check(["ana@example.com"]) == {}


async def test_pages_list_addresses_in_order_once_with_a_reason_filter(suppressions: SuppressionList) -> None:
    addresses = [f"user{i:02d}@example.com" for i in range(17)]
    for i, address in enumerate(reversed(addresses)):
        await suppressions.add(address, "bounce" if i % 2 else "manual")

    async def walk(reason: str | None) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            page = await suppressions.page(limit=4, cursor=cursor, reason=reason)
            pages.append([s.address for s in page.items])
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor

    pages = await walk(None)
    assert [len(p) for p in pages] == [4, 4, 4, 4, 1]
    assert [a for p in pages for a in p] == addresses
    manual = [a for p in await walk("manual") for a in p]
    bounced = [a for p in await walk("bounce") for a in p]
    assert sorted(manual + bounced) == addresses and manual == sorted(manual) and len(manual) == 9
    assert await walk("complaint") == [[]]
    with pytest.raises(UnprocessableContent):
        await suppressions.page(reason="spam")
    with pytest.raises(UnprocessableContent):
        await suppressions.page(limit=0)
