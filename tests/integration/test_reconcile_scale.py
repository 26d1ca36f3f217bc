"""Reconcile at scale (issue 15 item 8): the responses come from by_customer, never a walk of
the table's raw payloads; Scans run as parallel segments; the outcome check keeps only the
answers the outcome state reads."""

import random

import pytest

from nps_sync.aggregation.outcome_reconcile import Answers
from nps_sync.aggregation.reconcile import reconcile
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.models import StoredProfile, StoredResponse
from nps_sync.core.outcomes import derive
from nps_sync.store import dynamo
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords

ANA, BEA = "ana@example.com", "bea@example.com"


def scans_of(client):
    """Every Scan the client makes: (its request, its answer)."""
    seen, requests = [], {}

    def request(params, context, **_):
        requests[id(context)] = dict(params)

    def answer(parsed, context, **_):
        seen.append((requests.pop(id(context), {}), parsed))

    client.meta.events.register("provide-client-params.dynamodb.Scan", request)
    client.meta.events.register("after-call.dynamodb.Scan", answer)
    return seen


def test_reconcile_reads_responses_from_by_customer_not_past_their_raw_payloads(world):
    # given responses (each stored with its raw payload item) and a profile
    world.profile(ANA, 1, plan="pro")
    for i in range(6):
        world.respond(f"r{i}", ANA if i % 2 else BEA, i + 4, comment="long words " * 50)
    world.run()
    table = world.ddb.scan(TableName=world.records_table)["Items"]
    raw = [item for item in table if item["sk"]["S"].startswith("RAW#")]
    assert len(raw) == 6
    scans = scans_of(world.ddb)

    # when
    report = reconcile(
        CustomerRecords(world.records_table, world.ddb),
        AggregatesStore(world.aggregates_table, world.ddb),
        world.dimensions,
    )

    # then: the Scans that returned responses read the index's items only, a raw payload
    # never, and only the attributes reconcile needs (no comment)
    assert report.responses == 6 and report.unresolved == 0
    response_scans = [
        (request, answer)
        for request, answer in scans
        if any(item["sk"]["S"] == "RESP" for item in answer["Items"])
    ]
    assert response_scans
    assert all(request.get("IndexName") == "by_customer" for request, _ in response_scans)
    indexed = [item for item in table if "gsi1pk" in item]
    assert sum(answer["ScannedCount"] for _, answer in response_scans) == len(indexed)
    assert not any("comment" in item for _, a in response_scans for item in a["Items"])


def test_a_parallel_scan_yields_every_item_once_over_its_segments(world):
    # given 60 items
    for i in range(30):
        world.respond(f"r{i}", f"c{i}@example.com", i % 11)

    # when
    kwargs = {"TableName": world.records_table}
    items = list(dynamo.scan(world.ddb, kwargs, segments=4))

    # then
    keys = [(item["pk"]["S"], item["sk"]["S"]) for item in items]
    assert len(keys) == len(set(keys)) == 60
    assert sorted(keys) == sorted(
        (item["pk"]["S"], item["sk"]["S"]) for item in dynamo.pages(world.ddb, "scan", kwargs)
    )


class FailingSegment:
    """A client whose Scan fails in one segment, after the others have begun."""

    def __init__(self, failing: int):
        self.failing = failing

    def get_paginator(self, operation):
        return self

    def paginate(self, Segment, TotalSegments, **kwargs):  # noqa: N803 - boto3's names
        from botocore.exceptions import ClientError

        yield {"Items": [{"pk": {"S": f"p{Segment}"}}]}
        if Segment == self.failing:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "Scan")
        yield {"Items": [{"pk": {"S": f"q{Segment}"}}]}


def test_a_failure_in_any_segment_is_storage_unavailable():
    with pytest.raises(StorageUnavailable):
        list(dynamo.scan(FailingSegment(failing=2), {"TableName": "t"}, segments=4))


def test_the_outcome_fold_keeps_only_what_derive_reads_and_derives_the_same():
    # given billing customers with churn and renewal moments, and many answers each
    rng = random.Random(15)
    days = [f"2026-0{m}-{d:02d}T10:00:00.000000Z" for m in range(1, 10) for d in (3, 17)]
    profiles = [
        StoredProfile(
            f"c{i}",
            status="cancelled" if i % 3 == 0 else "active",
            billing_updated_at=rng.choice(days),
            churned_at=rng.choice([None, *days]),
            renewed_at=tuple(rng.sample(days, rng.randrange(4))),
        )
        for i in range(20)
    ]
    responses = [
        StoredResponse(
            f"RESP#p#{n}",
            customer_key=f"c{rng.randrange(20)}",
            score=rng.choice([None, *range(11)]),
            submitted_at=rng.choice(["", *days]),
            channel=rng.choice([None, "email", "web"]),
        )
        for n in range(600)
    ]

    # when
    answers = Answers(profiles)
    for response in responses:
        answers.add(response)
    kept = list(answers.kept())

    # then
    assert len(kept) < len(responses) / 3
    for profile in profiles:
        mine = [r for r in responses if r.customer_key == profile.customer_key]
        folded = [r for r in kept if r.customer_key == profile.customer_key]
        assert derive(profile, folded) == derive(profile, mine)
