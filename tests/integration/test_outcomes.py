"""Revenue outcomes by NPS category (docs/outcomes.md): a generated history of customers,
answers, plan changes, churn and renewals goes through storage and the aggregator (with
duplicate and failed deliveries); GET /outcomes must show what the test computes on its own
from the generated events, and reconcile must find nothing to repair."""

import base64
import json
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest

from nps_sync.aggregation.outcome_reconcile import check_outcomes
from nps_sync.aggregation.reconcile import reconcile, stored_counters
from nps_sync.core.models import BillingProfile, Money, Response
from nps_sync.query.customers import erase
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.items import stored_profile, stored_response
from nps_sync.store.outcomes import _decode_cursor, _encode_cursor

from .conftest import Flaky, api_resolver, call_api

TODAY = date(2026, 12, 31)
START = datetime(2026, 1, 1, tzinfo=UTC)
CHURNED = ("canceled", "cancelled", "deleted")


def category(score):
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


# --- the generated history, and what it should show (computed here, not by nps_sync) --------


def generate(seed, customers=14):
    rng = random.Random(seed)
    billing, answers = [], []
    for i in range(customers):
        key = f"c{i:02d}@example.com"
        t = START + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23))
        plan, mrr, status = rng.choice(["basic", "pro"]), rng.choice([900, 4900, 19900]), "active"
        billing.append(
            {"key": key, "at": t, "plan": plan, "status": status, "mrr": mrr, "renewed": False}
        )
        for _ in range(rng.randint(1, 5)):
            t += timedelta(days=rng.randint(5, 60), hours=rng.randint(0, 23))
            move = rng.choice(["renew", "renew", "plan", "churn", "reactivate"])
            if status in CHURNED and move != "reactivate":
                continue
            renewed = False
            if move == "renew" and status == "active":
                renewed = True
            elif move == "plan":
                plan, mrr = rng.choice(["basic", "pro"]), rng.choice([900, 4900, 19900])
            elif move == "churn":
                status, mrr = rng.choice(CHURNED), 0
            elif move == "reactivate":
                status, mrr = "active", rng.choice([900, 4900])
            billing.append(
                {
                    "key": key,
                    "at": t,
                    "plan": plan,
                    "status": status,
                    "mrr": mrr,
                    "renewed": renewed,
                }
            )
        for n in range(rng.randint(0, 4)):
            submitted = START + timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 1440))
            answers.append(
                {"key": key, "id": f"{i}-{n}", "score": rng.randint(0, 10), "at": submitted}
            )
    return billing, answers


MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]


def expected_outcomes(billing, answers):
    """Per (plan or overall, month, category): churned, at risk and renewals; per (plan or
    overall, category): current customers, MRR and the keys of the active detractors."""

    def category_at(key, moment):
        before = [a for a in answers if a["key"] == key and a["at"] <= moment]
        return category(max(before, key=lambda a: a["at"])["score"]) if before else "no_response"

    churned, renewals, at_risk = Counter(), Counter(), Counter()
    customers, mrr = Counter(), Counter()
    detractors = defaultdict(set)
    by_customer = defaultdict(list)
    for event in billing:
        by_customer[event["key"]].append(event)
    for key, events in by_customer.items():
        events.sort(key=lambda e: e["at"])
        churned_at, status = None, "active"
        for event in events:
            if event["status"] in CHURNED and status not in CHURNED:
                churned_at = event["at"]
            status = event["status"]
            if event["renewed"]:
                moment = event["at"]
                for segment in ("all", events[-1]["plan"]):
                    renewals[(segment, moment.strftime("%Y-%m"), category_at(key, moment))] += 1
        final = events[-1]
        for segment in ("all", final["plan"]):
            if status in CHURNED:
                month, then = churned_at.strftime("%Y-%m"), category_at(key, churned_at)
                churned[(segment, month, then)] += 1
                for period in MONTHS:  # at risk in every month up to the one it churned in
                    at_risk[(segment, period, then)] += period <= month
            else:
                latest = category_at(key, datetime.max.replace(tzinfo=UTC))
                customers[(segment, latest)] += 1
                mrr[(segment, latest)] += final["mrr"]
                for period in MONTHS:  # active now: at risk in every month
                    at_risk[(segment, period, latest)] += 1
                if latest == "detractor":
                    detractors[segment].add(key)
    return churned, renewals, at_risk, customers, mrr, detractors


def rate(churned, at_risk):
    return round(100 * churned / at_risk, 2) if at_risk else None


# --- driving the pipeline --------------------------------------------------------------------


def bill(world, event, n):
    profile = BillingProfile(
        provider="generic",
        source_id=event["key"],
        customer_key=event["key"],
        event_id=f"evt-{n}",
        source_updated_at=event["at"],
        email=event["key"],
        plan=event["plan"],
        status=event["status"],
        mrr=Money(amount=event["mrr"], currency="EUR"),
        renewed=event["renewed"],
    )
    return world.store.put_profile(profile, {"id": n}, 400)


def answer(world, item):
    response = Response(
        provider="generic",
        response_id=item["id"],
        customer_key=item["key"],
        score=item["score"],
        submitted_at=item["at"],
        updated_at=item["at"],
        comment="why" if item["score"] <= 6 else None,
    )
    return world.store.put_response(response, {"id": item["id"]}, 400)


@pytest.fixture
def call(world):
    app = api_resolver(world, today=lambda: TODAY)
    return lambda path, query: call_api(app.resolve, "GET", path, query)


def outcome_differences(world):
    records = CustomerRecords(world.records_table, world.ddb)
    return check_outcomes(
        [p for p in map(stored_profile, records.profile_items()) if p is not None],
        [r for r in map(stored_response, records.responses()) if r is not None],
        stored_counters(AggregatesStore(world.aggregates_table, world.ddb), world.dimensions)[2],
        world.dimensions,
    ).differences


def test_generated_history_shows_churn_and_renewals_by_category(world, call):
    world.dimensions = ("overall", "plan")  # fewer counters to write: the test stays quick
    billing, answers = generate(seed=7)
    rng = random.Random(11)
    writes = [("bill", e) for e in sorted(billing, key=lambda e: e["at"])]
    for item in answers:  # answers arrive at any point, out of order
        writes.insert(rng.randint(0, len(writes)), ("answer", item))
    for n, (kind, item) in enumerate(writes):
        assert bill(world, item, n) if kind == "bill" else answer(world, item)
        if n % 23 == 22:  # a delivery now and then: twice, or with failed writes
            batches = world.run(batch_size=7)
            for batch in batches[::2]:
                world.run(pending=batch, batch_size=7)
        if n % 29 == 28:
            world.run(world.aggregator(client=Flaky(world.ddb, fail_calls={3, 9})), batch_size=5)
    world.run()
    world.run(pending=world.seen, batch_size=100)  # the whole stream delivered once more

    churned, renewals, at_risk, customers, mrr, detractors = expected_outcomes(billing, answers)
    assert sum(churned.values()) > 4 and sum(renewals.values()) > 4  # the history has some
    assert detractors["all"]  # and active detractors to list
    gaps = 0
    for segment, query in (("all", {}), ("pro", {"dimension": "plan", "value": "pro"})):
        status, body = call(
            "/outcomes", {**query, "granularity": "month", "from": "2026-01-01", "to": "2026-12-31"}
        )
        assert status == 200, body
        assert [b["period"] for b in body["buckets"]] == MONTHS
        for bucket in body["buckets"]:
            for name, shown in bucket["categories"].items():
                key = (segment, bucket["period"], name)
                assert (shown["churned"], shown["renewals"]) == (churned[key], renewals[key]), key
                assert shown["at_risk"] == at_risk[key], key
                assert shown["churn_rate"] == rate(churned[key], at_risk[key]), key
            d, p = ((segment, bucket["period"], c) for c in ("detractor", "promoter"))
            gap = bucket["churn_gap"]["difference"]
            if at_risk[d] and at_risk[p]:
                expected = 100 * churned[d] / at_risk[d] - 100 * churned[p] / at_risk[p]
                assert gap == pytest.approx(expected, abs=0.006), (segment, bucket["period"])
                gaps += 1
            else:
                assert gap is None
        for name, shown in body["categories"].items():
            assert shown["customers"] == customers[(segment, name)], (segment, name)
            amount = sum(m["amount"] for m in shown["mrr"])
            assert amount == mrr[(segment, name)], (segment, name)
        assert body["mrr_at_risk"]["customers"] == customers[(segment, "detractor")]
        assert sum(m["amount"] for m in body["mrr_at_risk"]["mrr"]) == mrr[(segment, "detractor")]
        _, listing = call("/outcomes/at-risk", {**query, "limit": "100"})
        assert {a["customer_key"] for a in listing["accounts"]} == detractors[segment]
    assert gaps > 0
    assert world.differences() == []
    assert outcome_differences(world) == []


def test_churn_rate_and_gap_follow_the_definition(world, call):
    # given four promoters (one churns) and three detractors (two churn), all in March
    for i in range(7):
        key = f"k{i}@example.com"
        score = 10 if i < 4 else 2
        answer(world, {"key": key, "id": f"a{i}", "score": score, "at": START + timedelta(days=10)})
        base = {"key": key, "plan": "pro", "mrr": 4900, "renewed": False}
        bill(world, {**base, "at": START, "status": "active"}, f"{i}-0")
        if i in (0, 4, 5):
            churn = START + timedelta(days=65)
            bill(world, {**base, "at": churn, "status": "canceled", "mrr": 0}, f"{i}-1")
    world.run()
    # when
    _status, body = call(
        "/outcomes", {"granularity": "month", "from": "2026-03-01", "to": "2026-03-31"}
    )
    # then: at risk in March = active now + churned from March on
    march = body["buckets"][0]
    assert march["categories"]["promoter"] == {
        "churned": 1,
        "at_risk": 4,
        "churn_rate": 25.0,
        "renewals": 0,
    }
    assert march["categories"]["detractor"]["churn_rate"] == pytest.approx(66.67)
    gap = march["churn_gap"]
    assert gap["difference"] == pytest.approx(41.67)
    assert gap["low"] < gap["difference"] < gap["high"] and gap["significant"] is False
    assert body["categories"]["detractor"]["customers"] == 1
    assert body["mrr_at_risk"]["mrr"] == [{"amount": 4900, "currency": "EUR"}]
    lifetime = body["categories"]["promoter"]["avg_lifetime_revenue"][0]
    assert lifetime["customers"] == 3 and lifetime["amount"] == round(4900 * 364 / 30.4375)
    assert outcome_differences(world) == []


def test_at_risk_listing_is_largest_first_paginated_and_follows_changes(world, call):
    for i, amount in enumerate([900, 19900, 4900, 4900]):
        key = f"r{i}@example.com"
        at = START + timedelta(days=i)
        bill(
            world,
            {
                "key": key,
                "at": START,
                "plan": "pro",
                "status": "active",
                "mrr": amount,
                "renewed": False,
            },
            i,
        )
        answer(world, {"key": key, "id": f"r{i}", "score": 3, "at": at})
    world.run()
    status, first = call("/outcomes/at-risk", {"limit": "2"})
    assert status == 200
    assert [a["customer_key"] for a in first["accounts"]] == ["r1@example.com", "r3@example.com"]
    status, second = call("/outcomes/at-risk", {"limit": "2", "cursor": first["next_cursor"]})
    assert [a["customer_key"] for a in second["accounts"]] == ["r2@example.com", "r0@example.com"]
    _, recent = call("/outcomes/at-risk", {"order": "recent", "limit": "1"})
    assert recent["accounts"][0]["customer_key"] == "r3@example.com"
    assert recent["accounts"][0]["mrr"] == {"amount": 4900, "currency": "EUR"}
    # when r1 answers again as a promoter and r3 is erased
    answer(
        world, {"key": "r1@example.com", "id": "r1-b", "score": 10, "at": START + timedelta(days=9)}
    )
    erase(CustomerRecords(world.records_table, world.ddb), "r3@example.com")
    world.run()
    # then
    _, page = call("/outcomes/at-risk", {"limit": "10"})
    assert [a["customer_key"] for a in page["accounts"]] == ["r2@example.com", "r0@example.com"]
    assert page["next_cursor"] is None
    status, _bad = call("/outcomes/at-risk", {"cursor": "bm9wZQ"})
    assert status == 400
    report = reconcile(
        CustomerRecords(world.records_table, world.ddb),
        AggregatesStore(world.aggregates_table, world.ddb),
        world.dimensions,
    )
    assert report.differences == [] and report.outcomes.differences == []


def test_at_risk_listing_of_a_segment_pages_through_that_segment_only(world, call):
    """The index holds every at-risk account once; a plan's listing picks its own out."""
    plans = {"a@example.com": ("pro", 900), "b@example.com": ("basic", 99000)}
    plans |= {f"p{i}@example.com": ("pro", 1000 * (i + 1)) for i in range(3)}
    for i, (key, (plan, amount)) in enumerate(sorted(plans.items())):
        event = {"key": key, "at": START, "plan": plan, "status": "active", "mrr": amount}
        bill(world, {**event, "renewed": False}, i)
        answer(world, {"key": key, "id": f"s{i}", "score": 4, "at": START + timedelta(days=i)})
    world.run()
    pro = {"dimension": "plan", "value": "pro", "limit": "2"}
    _, first = call("/outcomes/at-risk", pro)
    _, second = call("/outcomes/at-risk", {**pro, "cursor": first["next_cursor"]})
    listed = [a["customer_key"] for a in first["accounts"] + second["accounts"]]
    assert listed == ["p2@example.com", "p1@example.com", "p0@example.com", "a@example.com"]
    assert {a["plan"] for a in first["accounts"] + second["accounts"]} == {"pro"}
    _, basic = call("/outcomes/at-risk", {"dimension": "plan", "value": "basic"})
    assert [a["customer_key"] for a in basic["accounts"]] == ["b@example.com"]
    status, body = call(
        "/outcomes/at-risk", {"dimension": "plan", "value": "basic", "cursor": first["next_cursor"]}
    )
    assert status == 400 and body["error"] == "bad_request"
    # a churned at-risk account leaves every listing
    churn = {"key": "p2@example.com", "at": START + timedelta(days=30), "plan": "pro"}
    bill(world, {**churn, "status": "canceled", "mrr": 0, "renewed": False}, 99)
    world.run()
    _, after = call("/outcomes/at-risk", {"dimension": "plan", "value": "pro", "limit": "10"})
    assert "p2@example.com" not in [a["customer_key"] for a in after["accounts"]]
    assert outcome_differences(world) == []


# --- the at-risk cursor: opaque and tamper-evident -------------------------------------------


def at_risk_accounts(world, keys):
    for i, key in enumerate(keys):
        event = {"key": key, "at": START, "plan": "pro", "status": "active", "mrr": 900 * (i + 1)}
        bill(world, {**event, "renewed": False}, i)
        answer(world, {"key": key, "id": f"k{i}", "score": 2, "at": START + timedelta(days=i)})
    world.run()


def flipped(cursor: str, at: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    swapped = alphabet[(alphabet.index(cursor[at]) + 1) % len(alphabet)]
    return cursor[:at] + swapped + cursor[at + 1 :]


def test_the_at_risk_cursor_names_no_customer_and_refuses_any_change_with_400(world, call):
    at_risk_accounts(world, ["ana@example.com", "bo@example.com", "cy@example.com"])
    _, first = call("/outcomes/at-risk", {"limit": "1"})
    cursor = first["next_cursor"]
    # then: nothing of the index key can be read from it, base64 or not
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for readable in (cursor, decoded.decode("latin-1")):
        assert "example.com" not in readable and "cy@" not in readable
        assert "CUST#" not in readable and "DETRACTOR" not in readable
    status, second = call("/outcomes/at-risk", {"limit": "1", "cursor": cursor})
    assert status == 200 and second["accounts"][0]["customer_key"] == "bo@example.com"
    # when it is altered anywhere, cut, or made up, it is a 400 (not a 503 from DynamoDB)
    old_style = base64.urlsafe_b64encode(
        json.dumps(
            {
                "listing": "mrr/overall#overall",
                "key": {"pk": "CUST#x", "sk": "PROFILE", "at_risk": "DETRACTOR", "at_risk_mrr": 1},
            }
        ).encode()
    ).decode()
    bad = [flipped(cursor, at) for at in (0, len(cursor) // 2, len(cursor) - 1)]
    bad += [cursor[:-4], cursor[:20], cursor + "AAAA", "x" * 80, old_style, "é" * 40, "=="]
    for forged in bad:
        status, body = call("/outcomes/at-risk", {"limit": "1", "cursor": forged})
        assert (status, body["error"]) == (400, "bad_request"), forged


def test_an_at_risk_cursor_opens_only_its_own_listing_and_key(world, call):
    at_risk_accounts(world, ["ana@example.com", "bo@example.com", "cy@example.com"])
    _, by_mrr = call("/outcomes/at-risk", {"limit": "1"})
    _, of_pro = call("/outcomes/at-risk", {"limit": "1", "dimension": "plan", "value": "pro"})
    other_key = api_resolver(world, today=lambda: TODAY)  # another container's key
    refused = [
        ({"order": "recent", "cursor": by_mrr["next_cursor"]}, call),
        ({"dimension": "plan", "value": "pro", "cursor": by_mrr["next_cursor"]}, call),
        ({"cursor": of_pro["next_cursor"]}, call),
        ({"cursor": by_mrr["next_cursor"]}, partial(call_other, other_key)),
    ]
    for query, caller in refused:
        status, body = caller("/outcomes/at-risk", {"limit": "1", **query})
        assert (status, body["error"]) == (400, "bad_request"), query
    assert call("/outcomes/at-risk", {"limit": "1", "cursor": by_mrr["next_cursor"]})[0] == 200


def call_other(app, path, query):
    return call_api(app.resolve, "GET", path, query)


def test_the_cursor_of_the_longest_key_fits_the_cursor_parameter():
    """A key of 512 four-byte characters is in the index key twice; the sealed cursor still
    fits the 4096 characters GET /outcomes/at-risk accepts."""
    longest = "\U0001f600" * 512
    key = {
        "pk": f"CUST#{longest}",
        "sk": "PROFILE",
        "at_risk": "DETRACTOR",
        "at_risk_mrr": f"{0:016d}#2026-01-01T00:00:00+00:00#{longest}",
    }
    secret = bytes(32)
    cursor = _encode_cursor(key, "mrr/overall#overall", secret)
    assert len(cursor) <= 4096
    assert _decode_cursor(cursor, "mrr/overall#overall", secret) == {
        name: {"S": value} for name, value in key.items()
    }


def test_an_older_derivation_written_late_leaves_the_newer_outcome_state(world):
    # given: a billing customer, and two derivations of its state: the newer (started later,
    # so it read the records later) is written first, the older one (a lagging shard) after it
    bill(
        world,
        {
            "key": "ana@example.com",
            "at": START,
            "plan": "pro",
            "status": "active",
            "mrr": 900,
            "renewed": False,
        },
        1,
    )
    records = CustomerRecords(world.records_table, world.ddb)
    stamp = records.profiles(["ana@example.com"])["ana@example.com"]["billing_updated_at"]
    newer, older = {"M": {"seen": {"S": "newer"}}}, {"M": {"seen": {"S": "older"}}}
    assert records.set_outcome("ana@example.com", newer, stamp, version=2_000)
    # when
    written = records.set_outcome("ana@example.com", older, stamp, version=1_000)
    # then
    assert not written
    item = records.profiles(["ana@example.com"])["ana@example.com"]
    assert item["outcome"] == newer and item["outcome_version"] == {"N": "2000"}
    assert records.set_outcome("ana@example.com", older, stamp, version=3_000)  # a newer one
