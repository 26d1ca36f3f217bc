"""Reconcile (nps_sync.aggregation.reconcile): stale segment stamps, --fix on a live stream, and
output that names no customer. The stream is the conftest's stand-in for Lambda; "lost" records
are read from it without running the aggregator, as records skipped after their retries are."""

import json
from datetime import UTC, datetime

from local.lambdas import Context, load_handler
from nps_sync.aggregation.reconcile import reconcile
from nps_sync.core.aggregates import Counts
from nps_sync.core.models import BillingProfile, Money
from nps_sync.core.settings import aggregate_settings
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords

from .conftest import nps

ANA = "ana@example.com"


def run_reconcile(world, **kwargs):
    return reconcile(
        CustomerRecords(world.records_table, world.ddb),
        AggregatesStore(world.aggregates_table, world.ddb),
        world.dimensions,
        **kwargs,
    )


def lose_pending_records(world):
    """The stream records so far never reach the aggregator."""
    assert world.new_records()


def test_a_response_whose_stamp_missed_a_profile_change_is_found_and_restamped(world):
    # given a response stamped with plan basic, then a plan change whose stream record is lost
    world.profile(ANA, 1, plan="basic", mrr_amount=900)
    world.respond("r1", ANA, 9)
    world.run()
    world.profile(ANA, 2, plan="pro", mrr_amount=4900)
    lose_pending_records(world)

    # when
    report = run_reconcile(world)

    # then: the aggregates agree with the stamps, the stamp disagrees with the profile
    assert report.differences == []
    [stale] = report.stale_stamps
    assert stale.response == "RESP#generic#r1"
    assert stale.stamped["plan"] == {"S": "basic"} and stale.current["plan"] == {"S": "pro"}
    assert report.unresolved == 1

    # when fixed, the stamp flows through the stream and moves the counts
    fixed = run_reconcile(world, fix=True)
    assert fixed.restamped == 1 and fixed.unresolved == 0
    world.run()
    assert nps(world.series("plan", "pro")) == {"all": Counts(promoters=1, mrr_promoters=4900)}
    assert nps(world.series("plan", "basic")) == {"all": Counts()}
    assert run_reconcile(world).unresolved == 0


def test_a_stale_stamp_is_repaired_even_when_its_version_is_not_older(world):
    # given a response whose stamped version equals the profile's but whose plan does not
    # (a response moved from another customer's profile carries that profile's version)
    world.profile(ANA, 3, plan="basic")
    world.respond("r1", ANA, 2)
    world.run()
    world.profile(ANA, 3, plan="team")
    lose_pending_records(world)

    # when
    report = run_reconcile(world, fix=True)

    # then
    assert report.restamped == 1
    world.run()
    assert nps(world.series("plan", "team")) == {"all": Counts(detractors=1)}
    assert run_reconcile(world).unresolved == 0


def test_fix_leaves_alone_what_the_stream_applies_between_the_two_passes(world):
    # given r2 stored while its stream record is still on its way
    world.respond("r1", ANA, 10)
    world.run()
    world.respond("r2", "bo@example.com", 3)
    pauses = []

    def stream_catches_up(seconds):
        pauses.append(seconds)
        world.run()

    # when
    report = run_reconcile(world, fix=True, settle_seconds=7, sleep=stream_catches_up)

    # then: nothing was "repaired", so nothing is counted twice
    assert pauses == [7]
    assert report.fixed == 0 and report.unresolved == 0
    world.run()
    assert world.differences() == []
    assert world.series("overall", "all")["all"].nps_counts() == Counts(promoters=1, detractors=1)


def test_fix_repairs_only_differences_alike_in_both_passes(world):
    # given a lost record (a real difference) and another in flight during the first pass
    world.dimensions = ("overall",)  # 2 keys per response: its day and its month
    world.respond("r1", ANA, 10, day="2026-01-15")
    lose_pending_records(world)
    world.respond("r2", "bo@example.com", 3, day="2026-02-15")

    def in_flight_applied_and_another_arrives(_seconds):
        world.run()
        world.respond("r3", "cy@example.com", 8, day="2026-01-20")

    # when
    report = run_reconcile(world, fix=True, sleep=in_flight_applied_and_another_arrives)

    # then: r1's own day was alike in both passes and is repaired; the keys r3 touches (its own
    # day, and January, shared with r1) are not
    assert len(report.differences) == 3
    assert (report.fixed, report.unsettled, report.unresolved) == (1, 2, 2)
    world.run()  # r3 arrives
    assert {str(d.key) for d in world.differences()} == {"overall#all/month#2026-01"}
    # and once the stream is quiet a second run repairs the rest
    assert run_reconcile(world, fix=True, sleep=lambda _s: None).fixed == 1
    assert world.differences() == []
    overall = world.series("overall", "all")["all"]
    assert overall.nps_counts() == Counts(promoters=1, passives=1, detractors=1)


def billing(world, customer, n, at="2026-01-01T00:00:00"):
    profile = BillingProfile(
        provider="generic",
        source_id=customer,
        customer_key=customer,
        event_id=f"evt-{n}",
        source_updated_at=datetime.fromisoformat(at).replace(tzinfo=UTC),
        email=customer,
        plan="pro",
        status="active",
        mrr=Money(amount=4900, currency="EUR"),
    )
    assert world.store.put_profile(profile, {"id": n}, 400)


def damaged_outcomes(world):
    """A detractor with billing whose derived outcome state was wiped, unseen by the stream:
    a state difference (keyed by the customer) and index differences (sk and item hold it)."""
    billing(world, ANA, 1)
    world.respond("r1", ANA, 2, comment="the export is broken")
    world.run()
    world.ddb.update_item(
        TableName=world.records_table,
        Key={"pk": {"S": f"CUST#{ANA}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="REMOVE outcome",
    )
    lose_pending_records(world)


def test_reconcile_output_names_no_customer(world, capsys, monkeypatch):
    damaged_outcomes(world)
    world.ddb.update_item(  # and a stale stamp: the plan moved, its stream record is lost
        TableName=world.records_table,
        Key={"pk": {"S": f"CUST#{ANA}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET #plan = :p ADD profile_version :one",
        ExpressionAttributeNames={"#plan": "plan"},
        ExpressionAttributeValues={":p": {"S": "basic"}, ":one": {"N": "1"}},
    )
    lose_pending_records(world)
    report = run_reconcile(world)
    kinds = {d.kind for d in report.outcomes.differences}
    assert {"state", "index"} <= kinds and report.stale_stamps

    # the command's output
    from nps_sync.cli import reconcile as reconcile_module

    monkeypatch.setenv("RECORDS_TABLE", world.records_table)
    monkeypatch.setenv("AGGREGATES_TABLE", world.aggregates_table)
    monkeypatch.setenv("AGGREGATE_DIMENSIONS", ",".join(world.dimensions))
    aggregate_settings.cache_clear()
    try:
        assert reconcile_module.main([]) == 1
    finally:
        aggregate_settings.cache_clear()
    out = capsys.readouterr()
    printed = [json.loads(line) for line in out.out.splitlines()]
    assert {p.get("outcome") for p in printed} >= {"state", "index"}
    assert any("stamp" in p for p in printed)
    assert ANA not in out.out + out.err and "export is broken" not in out.out + out.err


def test_the_reconcile_function_logs_no_customer(world, template, caplog, capsys, monkeypatch):
    caplog.set_level("DEBUG", logger="nps-sync")
    damaged_outcomes(world)
    monkeypatch.setenv("RECORDS_TABLE", world.records_table)
    monkeypatch.setenv("AGGREGATES_TABLE", world.aggregates_table)
    monkeypatch.setenv("AGGREGATE_DIMENSIONS", ",".join(world.dimensions))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    aggregate_settings.cache_clear()
    handler = load_handler(template.functions["ReconcileFunction"])
    context = Context("ReconcileFunction", 512, 900, "req-1", "arn:aws:lambda:::function:R")
    try:
        answer = handler({}, context)
    finally:
        aggregate_settings.cache_clear()
    assert answer["outcome_differences"] >= 2
    # every attribute of every record (message, extra keys, appended keys), and raw output
    records = [r for r in caplog.records if r.name.startswith("nps-sync")]
    logged = "\n".join(json.dumps(r.__dict__, default=str) for r in records)
    logged += capsys.readouterr().out
    assert [r.getMessage() for r in records].count("outcome differs") >= 2
    assert ANA not in logged and "export is broken" not in logged
