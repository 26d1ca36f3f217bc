"""The aggregator against moto, with Lambda's delivery semantics and its failure modes; each
scenario ends with reconcile (the from-scratch recomputation) finding no difference."""

from nps_sync.aggregation.stream import Lane
from nps_sync.core.aggregates import Counts
from nps_sync.core.retry import ATTEMPTS

from .conftest import Flaky, nps


def overall(world):
    return world.series("overall", "all").get("all", Counts()).nps_counts()


def test_responses_are_counted_in_every_dimension_and_period(world):
    world.respond("r1", "ana@example.com", 10, channel="email", survey="q1")
    world.respond("r2", "bo@example.com", 3, channel="web", survey="q1")
    world.run()
    assert overall(world) == Counts(promoters=1, detractors=1)
    assert nps(world.series("channel", "web", "month")) == {"2026-01": Counts(detractors=1)}
    assert nps(world.series("plan", "unknown", "week")) == {"2026-W03": Counts(1, 0, 1)}
    assert world.differences() == []


def test_the_same_batch_delivered_twice_counts_once(world):
    for i in range(5):
        world.respond(f"r{i}", f"c{i}@example.com", 9)
    aggregator = world.aggregator()
    batches = world.run(aggregator)
    aggregator.handle({"Records": batches[0]})  # Lambda delivers it again
    assert overall(world) == Counts(promoters=5)
    assert world.differences() == []


def test_a_batch_failing_halfway_is_retried_from_the_reported_record(world):
    for i in range(6):
        world.respond(f"r{i}", f"c{i}@example.com", i + 4, day=f"2026-02-0{i + 1}")
    # the day of the second record is a key only it adds; its write fails as often as the
    # aggregator tries it within the invocation (core/retry.py), and passes when delivered again
    flaky = Flaky(world.ddb, fail_keys={"overall#all/day#2026-02-02": ATTEMPTS})
    aggregator = world.aggregator(client=flaky)
    batches = world.run(aggregator)
    assert len(batches) == 2
    assert batches[1] == batches[0][1:]  # from the reported record on, applied ones included
    assert overall(world).n == 6
    assert world.differences() == []


def test_an_update_retried_by_the_sdk_after_a_lost_answer_applies_once(world):
    world.respond("r1", "ana@example.com", 10)
    flaky = Flaky(world.ddb, repeat_calls=set(range(1, 100, 3)))
    world.run(world.aggregator(client=flaky))
    assert overall(world) == Counts(promoters=1)
    assert world.differences() == []


def test_records_of_two_shards_touching_the_same_key_both_count(world):
    for i in range(4):
        world.respond(f"r{i}", f"c{i}@example.com", 10)
    records = world.new_records()
    first, second = records[:2], records[2:]
    lanes = {id(r): "shard-a" for r in first} | {id(r): "shard-b" for r in second}
    aggregator = world.aggregator(locator=lambda arn, batch: Lane(lanes[id(batch[0])]))
    # shard b's batch is processed before shard a's, with higher sequence numbers
    assert aggregator.handle({"Records": second}) == {"batchItemFailures": []}
    assert aggregator.handle({"Records": first}) == {"batchItemFailures": []}
    assert aggregator.handle({"Records": first}) == {"batchItemFailures": []}  # and again
    assert overall(world) == Counts(promoters=4)
    assert world.differences() == []


def test_records_arriving_out_of_order_end_in_the_right_counts(world):
    world.respond("r1", "ana@example.com", 2, version=5)
    assert not world.respond("r1", "ana@example.com", 10, version=1)  # older: ignored
    world.respond("r2", "bo@example.com", 8)
    records = world.new_records()
    aggregator = world.aggregator(locator=lambda arn, batch: Lane(f"s{batch[0]['eventID']}"))
    for record in reversed(records):  # every record in a lane of its own, newest first
        aggregator.handle({"Records": [record]})
    assert overall(world) == Counts(passives=1, detractors=1)
    assert world.differences() == []


def test_a_response_update_moves_it_to_its_new_category(world):
    world.respond("r1", "ana@example.com", 3, channel="email")
    world.run()
    assert world.respond("r1", "ana@example.com", 9, version=1, channel="web")
    world.run()
    assert overall(world) == Counts(promoters=1)
    assert nps(world.series("channel", "email")) == {"all": Counts()}
    assert nps(world.series("channel", "web")) == {"all": Counts(promoters=1)}
    assert world.differences() == []


def test_a_profile_change_between_two_responses_moves_the_customer(world):
    world.profile("ana@example.com", 1, plan="basic", region="EMEA", mrr_amount=1000)
    world.respond("r1", "ana@example.com", 10)
    world.run()
    assert nps(world.series("plan", "basic")) == {"all": Counts(promoters=1, mrr_promoters=1000)}
    world.profile("ana@example.com", 2, plan="pro", region="EMEA", mrr_amount=5000)
    world.respond("r2", "ana@example.com", 6, day="2026-01-20")
    world.run()
    assert nps(world.series("plan", "basic")) == {"all": Counts()}
    assert nps(world.series("plan", "pro")) == {
        "all": Counts(promoters=1, detractors=1, mrr_promoters=5000, mrr_detractors=5000)
    }
    assert world.differences() == []


def test_an_erasure_takes_the_customer_out_of_the_aggregates(world):
    from nps_sync.query.customers import erase
    from nps_sync.store.customers import CustomerRecords

    world.profile("ana@example.com", 1, plan="pro")
    world.respond("r1", "ana@example.com", 10)
    world.respond("r2", "ana@example.com", 0, day="2026-03-01")
    world.respond("r3", "bo@example.com", 8)
    world.run()
    progress = erase(CustomerRecords(world.records_table, world.ddb), "ana@example.com")
    assert progress is not None and progress.complete
    deleted = progress.deleted
    assert deleted["responses"] == 2
    assert deleted["raw_payloads"] == 2
    assert deleted["profile_items"] == 1
    world.run()
    assert overall(world) == Counts(passives=1)
    assert world.differences() == []
    items = world.ddb.scan(TableName=world.records_table)["Items"]
    assert all("ana@example.com" not in str(item) for item in items)


def test_a_batch_of_responses_costs_one_write_per_aggregate_key(world):
    for i in range(100):
        world.profile(f"c{i}@example.com", 1, plan="pro", account=f"acct-{i}")
    world.run()
    for i in range(100):
        world.respond(f"r{i}", f"c{i}@example.com", i % 11, channel="email", survey="q1")
    aggregator = world.aggregator()
    world.run(aggregator)
    writes = aggregator.aggregates.writes
    # one by one: 100 x 10 writes; coalesced: one per key the batch touches, day and month of
    # overall, plan, region, channel, survey (one value each); the scores are in those items
    assert writes == 2 * 5
    # account is answered on read from the by_account index, not counted
    assert world.series("account", "acct-7") == {}
    assert nps(world.index_series("account", "acct-7")) == {"all": Counts(passives=1)}
    assert world.differences() == []


def test_account_on_read_equals_account_counted_on_write(world):
    """The index answers exactly what counting would: same responses, same segment stamps."""
    world.dimensions = (*world.dimensions, "account")
    world.profile("ana@example.com", 1, plan="pro", account="Acme", mrr_amount=4900)
    world.profile("bo@example.com", 1, plan="pro", account="Acme", mrr_amount=900)
    world.profile("cy@example.com", 1, plan="starter", account="Initech", mrr_amount=100)
    world.run()
    world.respond("r1", "ana@example.com", 10, day="2026-01-05")
    world.respond("r2", "bo@example.com", 3, day="2026-01-31")
    world.respond("r3", "cy@example.com", 8, day="2026-02-01")
    world.respond("r4", "ana@example.com", 6, day="2026-03-30")
    world.run()
    world.profile("cy@example.com", 2, plan="pro", account="Acme", mrr_amount=100)  # moves
    world.respond("r2", "bo@example.com", 9, day="2026-01-31", version=1)  # replaced
    world.run()
    for account in ("Acme", "Initech"):
        for granularity in ("day", "week", "month", "quarter", "year", "all"):
            counted = {p: c for p, c in world.series("account", account, granularity).items() if c}
            assert world.index_series("account", account, granularity) == counted
    assert world.index_series("account", "Acme")["all"] == Counts(
        promoters=2,
        passives=1,
        detractors=1,
        mrr_promoters=4900 + 900,
        mrr_passives=100,
        mrr_detractors=4900,
        score_10=1,  # r1
        score_9=1,  # r2, replaced (it was a 3)
        score_8=1,  # r3, cy moved to Acme
        score_6=1,  # r4
    )
    assert world.index_series("account", "Initech") == {}
    assert world.differences() == []


def test_reconcile_fix_repairs_a_damaged_aggregate(world):
    from nps_sync.aggregation.reconcile import reconcile
    from nps_sync.store.aggregates import AggregatesStore
    from nps_sync.store.customers import CustomerRecords

    world.respond("r1", "ana@example.com", 10)
    world.run()
    (month,) = world.ddb.query(
        TableName=world.aggregates_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": {"S": "overall#all"}, ":m": {"S": "month#"}},
    )["Items"]
    world.ddb.update_item(
        TableName=world.aggregates_table,
        Key={"pk": month["pk"], "sk": month["sk"]},
        UpdateExpression="ADD promoters :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    differences = world.differences()
    logical = month["sk"]["S"].rsplit("#", 1)[0]  # without its counter shard
    assert [str(d.key) for d in differences] == [f"overall#all/{logical}"]
    assert differences[0].stored.promoters == 2 and differences[0].expected.promoters == 1
    report = reconcile(
        CustomerRecords(world.records_table, world.ddb),
        AggregatesStore(world.aggregates_table, world.ddb),
        world.dimensions,
        fix=True,
    )
    assert report.fixed == 1
    assert world.differences() == []
