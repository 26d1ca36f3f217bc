"""Reconcile reads no raw payload (issue 15 item 8) and finds and repairs identity orphans
(item 5): records left under an alias whose link points to another customer key, as a record
written just before its link is when the link's move reads a lagging by_customer index."""

import json
from datetime import UTC, datetime

from local.lambdas import Context, load_handler
from nps_sync.aggregation.reconcile import Orphan, reconcile
from nps_sync.core.models import BillingProfile, Money
from nps_sync.core.observability import customer_ref
from nps_sync.core.settings import aggregate_settings
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.links import Links

ANA, ALIAS = "ana@example.com", "acme-42"  # ALIAS: an own customer id, linked to ANA


def run_reconcile(world, **kwargs):
    return reconcile(
        CustomerRecords(world.records_table, world.ddb),
        AggregatesStore(world.aggregates_table, world.ddb),
        world.dimensions,
        **kwargs,
    )


def calls_of(client):
    """Every call the client makes: (operation, its request, its answer)."""
    seen, requests = [], {}

    def request(params, context, model, **_):
        requests[id(context)] = (model.name, dict(params))

    def answer(parsed, context, **_):
        name, params = requests.pop(id(context), ("?", {}))
        seen.append((name, params, parsed))

    client.meta.events.register("provide-client-params.dynamodb.*", request)
    client.meta.events.register("after-call.dynamodb.*", answer)
    return seen


def returned(answer):
    items = list(answer.get("Items", []))
    for found in answer.get("Responses", {}).values():
        items.extend(found)
    if "Item" in answer:
        items.append(answer["Item"])
    return items


def billing(world, customer, n, email=None):
    profile = BillingProfile(
        provider="generic",
        source_id=customer,
        customer_key=customer,
        event_id=f"evt-{n}",
        source_updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        email=email,
        plan="pro",
        status="active",
        mrr=Money(amount=4900, currency="EUR"),
    )
    assert world.store.put_profile(profile, {"id": n, "padding": "x" * 2000}, 400)


def test_reconcile_reads_no_raw_payload_and_scans_no_table(world):
    # given a billing customer (its provider record, PROFILE, event marker and raw payload)
    # and answers (each with its raw payload)
    billing(world, ANA, 1, email=ANA)
    for i in range(5):
        world.respond(f"r{i}", ANA if i % 2 else "bo@example.com", i + 5, comment="x " * 500)
    world.run()
    table = world.ddb.scan(TableName=world.records_table)["Items"]
    assert sum(item["sk"]["S"].startswith("RAW#") for item in table) == 6
    calls = calls_of(world.ddb)

    # when
    report = run_reconcile(world)

    # then no call read a raw payload, or Scanned RecordsTable itself (a Scan bills every
    # item it passes over, filtered out or not) ...
    read = [item for _, _, answer in calls for item in returned(answer)]
    assert read and not any(item["sk"]["S"].startswith("RAW#") for item in read)
    table_scans = [
        params
        for name, params, _ in calls
        if name == "Scan"
        and params["TableName"] == world.records_table
        and "IndexName" not in params
    ]
    assert table_scans == []
    # ... and everything was checked, the PROFILEs read by key
    assert any(name == "BatchGetItem" for name, _, _ in calls)
    assert report.unresolved == 0
    assert (report.responses, report.customers, report.outcomes.profiles) == (5, 1, 1)


def orphan_under_lag(world, monkeypatch):
    """An answer stored under ALIAS, then the link ALIAS -> ANA written while by_customer does
    not list that answer yet: the link's move misses it and the link is settled anyway."""
    world.respond("r1", ALIAS, 9)
    world.respond("r2", ANA, 3)
    world.run()
    records = CustomerRecords(world.records_table, world.ddb)
    with monkeypatch.context() as lagging:
        lagging.setattr(CustomerRecords, "by_customer", lambda self, key, prefix="": [])
        Links(records).link(ALIAS, ANA)
    world.run()
    assert Links(records).linked(ALIAS) == ANA
    under_alias = records.by_customer(ALIAS)
    assert [item["pk"]["S"] for item in under_alias] == ["RESP#generic#r1"]


def test_an_orphan_is_reported_then_moved_with_fix(world, monkeypatch):
    orphan_under_lag(world, monkeypatch)

    # when reporting only
    report = run_reconcile(world)

    # then
    assert report.orphans == [Orphan(ALIAS, ANA, 1, False)]
    assert report.as_dict()["orphans"] == 1 and report.unresolved == 1
    assert report.differences == [] and report.stale_stamps == []
    shown = json.dumps(report.orphans[0].as_dict())
    assert ALIAS not in shown and ANA not in shown and customer_ref(ALIAS) in shown

    # when fixed (two passes alike)
    fixed = run_reconcile(world, fix=True, sleep=lambda _s: None)

    # then the answer is ANA's, re-stamped, and nothing is left
    assert (fixed.moved, fixed.unresolved, fixed.unsettled) == (1, 0, 0)
    records = CustomerRecords(world.records_table, world.ddb)
    assert records.by_customer(ALIAS) == []
    assert sorted(i["pk"]["S"] for i in records.by_customer(ANA, "RESP#")) == [
        "RESP#generic#r1",
        "RESP#generic#r2",
    ]
    world.run()
    after = run_reconcile(world)
    assert after.orphans == [] and after.unresolved == 0


def test_a_linked_alias_without_records_is_no_orphan(world):
    # given a link whose move went through
    world.respond("r1", ALIAS, 9)
    world.run()
    Links(CustomerRecords(world.records_table, world.ddb)).link(ALIAS, ANA)
    world.run()

    # then
    report = run_reconcile(world)
    assert report.orphans == [] and report.unresolved == 0 and report.responses == 1


def test_the_scheduled_reconcile_emits_the_orphans(world, template, capsys, monkeypatch):
    orphan_under_lag(world, monkeypatch)
    monkeypatch.setenv("RECORDS_TABLE", world.records_table)
    monkeypatch.setenv("AGGREGATES_TABLE", world.aggregates_table)
    monkeypatch.setenv("AGGREGATE_DIMENSIONS", ",".join(world.dimensions))
    aggregate_settings.cache_clear()
    handler = load_handler(template.functions["ReconcileFunction"])
    context = Context("ReconcileFunction", 512, 900, "req-1", "arn:aws:lambda:::function:R")
    capsys.readouterr()
    try:
        answer = handler({}, context)
    finally:
        aggregate_settings.cache_clear()
    assert answer["orphans"] == 1
    out = capsys.readouterr().out
    metrics = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            entry = json.loads(line)
            for definition in entry["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    metrics[metric["Name"]] = entry[metric["Name"]]
    assert metrics["IdentityOrphans"] == 1.0 or metrics["IdentityOrphans"] == [1.0]
    assert metrics["ReconcileDifferences"] in (1.0, [1.0])
    assert ALIAS not in out and ANA not in out


def test_an_alias_profile_left_by_an_unfinished_move_is_found_and_merged(world):
    # given ANA's answer, and an alias PROFILE whose link exists but whose move never finished
    # (no `settled` mark: the request failed before merging the PROFILE)
    world.profile(ANA, 1, plan="pro")
    world.respond("r1", ANA, 9)
    world.profile(ALIAS, 1, region="EU", crm_updated_at="2026-01-02T00:00:00.000000Z")
    world.ddb.put_item(
        TableName=world.records_table,
        Item={
            "pk": {"S": f"ID#{ALIAS}"},
            "sk": {"S": "ID"},
            "type": {"S": "link"},
            "customer_key": {"S": ANA},
            "gsi1pk": {"S": f"CUST#{ANA}"},
            "gsi1sk": {"S": f"ID#{ALIAS}"},
        },
    )
    world.run()

    # when
    report = run_reconcile(world)

    # then
    assert report.orphans == [Orphan(ALIAS, ANA, 0, True)] and report.unresolved == 1

    # when fixed: the alias's PROFILE is merged into ANA's and deleted
    fixed = run_reconcile(world, fix=True, sleep=lambda _s: None)
    assert (fixed.moved, fixed.unresolved) == (1, 0)
    records = CustomerRecords(world.records_table, world.ddb)
    assert records.profile(ALIAS) is None
    world.run()
    assert run_reconcile(world).orphans == []
