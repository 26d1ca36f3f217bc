"""DELETE /customers/{key} (nps_sync.query.customers.erase_customer) through the API's resolver and
the stream stand-in: the key is read as identity reads it, an alias erases its customer,
nothing found is a 404, and nothing of the customer is left in either table."""

import json
import zlib
from datetime import UTC, datetime
from functools import partial

import pytest

from nps_sync.aggregation.reconcile import reconcile
from nps_sync.core.aggregates import Counts
from nps_sync.core.models import BillingProfile, CrmProfile, Money
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords

from .conftest import READ_TOKEN, api_resolver, call_api

ANA = "ana@example.com"
COMMENT = "Exports time out every Monday"


@pytest.fixture
def call(world):
    return partial(call_api, api_resolver(world).resolve)


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00").replace(tzinfo=UTC)


def ana_everywhere(world):
    """Ana as billing (Stripe customer cus_1, own id 42), CRM and two answers, one a detractor
    with a comment (so she is in the at-risk index too); Bo answers as well."""
    billing = BillingProfile(
        provider="stripe",
        source_id="cus_1",
        customer_key=ANA,
        customer_id="42",
        event_id="evt_1",
        source_updated_at=at("2026-01-01"),
        email=ANA,
        plan="pro",
        status="active",
        mrr=Money(amount=4900, currency="EUR"),
    )
    crm = CrmProfile(
        provider="hubspot",
        source_id="contact-7",
        customer_key=ANA,
        event_id="hs-1",
        source_updated_at=at("2026-01-02"),
        email=ANA,
        account="Acme GmbH",
        region="EMEA",
    )
    assert world.store.put_profile(billing, {"email": ANA}, 400)
    assert world.store.put_profile(crm, {"email": ANA}, 400)
    world.respond("r1", ANA, 2, day="2026-01-10", comment=COMMENT)
    world.respond("r2", ANA, 8, day="2026-01-05")
    world.respond("r3", "bo@example.com", 9, day="2026-01-12")
    world.run()


def residue(world, *needles):
    """Every item of both tables holding one of the needles, raw payloads decompressed."""
    found = []
    for table in (world.records_table, world.aggregates_table):
        for page in world.ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                text = json.dumps(item, default=str)
                for value in item.values():
                    if "B" in value:
                        text += zlib.decompress(value["B"]).decode()
                if any(needle.lower() in text.lower() for needle in needles):
                    found.append((table, item["pk"]["S"], item["sk"]["S"]))
    return found


@pytest.mark.parametrize("asked", ["Ana@Example.com", " ana@example.com ", "stripe:cus_1", "42"])
def test_erasure_by_any_spelling_or_alias_leaves_nothing_of_the_customer(world, call, asked):
    ana_everywhere(world)
    assert residue(world, ANA, COMMENT)  # she is in both tables before

    # when
    status, body = call("DELETE", f"/customers/{asked}")
    world.run()  # the stream's REMOVE records correct the aggregates and the at-risk index

    # then
    assert status == 202 and body["erased"] is True
    assert body["deleted"]["responses"] == 2
    assert body["deleted"]["raw_payloads"] == 4  # two answers, two profile events
    assert body["deleted"]["provider_profiles"] == 2
    assert body["deleted"]["identity_links"] >= 2  # 42 and stripe:cus_1 at least
    assert residue(world, ANA, COMMENT, "cus_1") == []
    assert call("GET", f"/customers/{ANA}")[0] == 404
    overall = AggregatesStore(world.aggregates_table, world.ddb).series(
        "overall", "all", "all", None, None
    )
    assert overall["all"].nps_counts() == Counts(promoters=1)  # Bo's answer only
    report = reconcile(
        CustomerRecords(world.records_table, world.ddb),
        AggregatesStore(world.aggregates_table, world.ddb),
        world.dimensions,
    )
    assert report.unresolved == 0, report.as_dict()


def test_segment_items_keyed_by_the_account_stay_with_zero_counts(world, call):
    # an account (a company) is a segment, not a person: docs/security.md "Erasure"
    world.dimensions = ("overall", "account")
    ana_everywhere(world)
    store = AggregatesStore(world.aggregates_table, world.ddb)
    assert store.series("account", "Acme GmbH", "all", None, None)["all"].n == 2
    call("DELETE", f"/customers/{ANA}")
    world.run()
    assert store.series("account", "Acme GmbH", "all", None, None) == {"all": Counts()}
    assert residue(world, ANA, COMMENT) == []


def test_erasing_a_customer_nobody_stored_answers_404_and_deletes_nothing(world, call):
    world.respond("r3", "bo@example.com", 9)
    world.run()
    status, body = call("DELETE", "/customers/nobody@example.com")
    assert (status, body["error"]) == (404, "not_found")
    status, body = call("DELETE", "/customers/%20")
    assert status == 404
    assert call("GET", "/customers/BO@example.com")[0] == 200  # the view reads keys alike


def test_a_read_token_can_neither_erase_nor_read_a_customer(world, call):
    ana_everywhere(world)
    before = residue(world, ANA, COMMENT)
    for method in ("DELETE", "GET"):
        status, body = call(method, f"/customers/{ANA}", token=READ_TOKEN)
        assert (status, body["error"]) == (403, "insufficient_scope")
    world.run()
    assert residue(world, ANA, COMMENT) == before  # nothing was erased
    assert call("GET", f"/customers/{ANA}")[0] == 200  # the admin token reads her
