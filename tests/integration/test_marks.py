"""Bounded exactly-once state (docs/aggregation.md "Marks of old shards", "Lane"): marks of
shards no record can come from any more are collected, and a stream that cannot tell a batch's
shard (throttled, trimmed) makes the batch come again, never skips it."""

import json

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from nps_sync.aggregation.aggregator import Aggregator
from nps_sync.aggregation.stream import Lane, LaneUnknown, ShardLocator
from nps_sync.core.aggregates import Counts
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.counters import MARK_HORIZON_SECONDS, MARK_PREFIX, marks_of, shard_of
from nps_sync.store.customers import CustomerRecords

from .conftest import STREAMS_ENDPOINT

HOUR = 3600.0
MONTH = "month#2026-01"  # the month of world.respond's default day: the hot key here


def hot(lane: str) -> dict:
    """The hot key's item that ``lane`` writes (store/counters.py: one per counter shard)."""
    return {"pk": {"S": "overall#all"}, "sk": {"S": f"{MONTH}#{shard_of(lane)}"}}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def aggregator(world, locator, clock=None) -> Aggregator:
    return Aggregator(
        AggregatesStore(world.aggregates_table, world.ddb),
        CustomerRecords(world.records_table, world.ddb),
        ("overall",),
        locator=locator,
        **({"clock": clock} if clock is not None else {}),
    )


def hot_marks(world, lane: str) -> dict:
    item = world.ddb.get_item(TableName=world.aggregates_table, Key=hot(lane))["Item"]
    return marks_of(item)


def most_marks(world) -> int:
    """The most marks any item of the hot key holds (whichever counter shard)."""
    items = world.ddb.query(
        TableName=world.aggregates_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": {"S": "overall#all"}, ":m": {"S": f"{MONTH}#"}},
    )["Items"]
    return max(len(marks_of(item)) for item in items)


def overall(world) -> Counts:
    return world.series("overall", "all").get("all", Counts()).nps_counts()


# --- (a) marks of old shards are collected -------------------------------------------------


def test_marks_on_a_hot_key_stay_bounded_over_many_shard_generations(world):
    # given: two partitions whose shards roll over every 4 h, for 40 generations (160 h), each
    # shard writing the hot key; no ancestor is named (the worst case: only age collects)
    world.dimensions = ("overall",)
    clock, lane = Clock(), {"shard": ""}
    worker = aggregator(world, lambda arn, batch: Lane(lane["shard"]), clock)
    earlier: dict[int, list] = {}
    most = 0
    for generation in range(40):
        clock.now += 4 * HOUR
        for partition in (0, 1):
            lane["shard"] = f"shardId-{partition}-{generation:03d}"
            world.respond(
                f"r{generation}-{partition}",
                f"c{partition}@example.com",
                generation % 11,
                day=f"2026-01-{1 + generation % 28:02d}",
            )
            batch = world.new_records()
            # when: each batch is delivered twice, and the shard before delivers its last
            # batch once more 4 h later (a redelivery within the retention)
            assert worker.handle({"Records": batch}) == {"batchItemFailures": []}
            assert worker.handle({"Records": batch}) == {"batchItemFailures": []}
            if partition in earlier:
                lane["shard"] = f"shardId-{partition}-{generation - 1:03d}"
                assert worker.handle({"Records": earlier[partition]}) == {"batchItemFailures": []}
            earlier[partition] = batch
            most = max(most, most_marks(world))
    # then: the marks are those of the shards that wrote within the horizon (26 h: 7 per
    # partition) plus the one just gone stale, not one per shard ever (80)
    per_partition = MARK_HORIZON_SECONDS / (4 * HOUR) + 2
    assert most <= 2 * per_partition, most
    assert overall(world).n == 80
    assert world.differences() == []


def test_a_shard_writing_again_after_its_mark_was_collected_counts_its_new_records(world):
    world.dimensions = ("overall",)
    clock = Clock()
    lanes = {"a": "shardId-a", "b": "shardId-j"}  # two shards writing one counter item
    assert shard_of(lanes["a"]) == shard_of(lanes["b"])
    current = {"lane": lanes["a"]}
    worker = aggregator(world, lambda arn, batch: Lane(current["lane"]), clock)
    world.respond("r1", "ana@example.com", 10)
    assert worker.handle({"Records": world.new_records()}) == {"batchItemFailures": []}
    clock.now += MARK_HORIZON_SECONDS + HOUR  # shard a writes nothing to the key for 27 h
    current["lane"] = lanes["b"]
    world.respond("r2", "bo@example.com", 8)
    assert worker.handle({"Records": world.new_records()}) == {"batchItemFailures": []}
    assert set(hot_marks(world, lanes["a"])) == {"shardId-j"}  # a's mark collected by b's write
    current["lane"] = lanes["a"]  # an open shard, writing the key again
    world.respond("r3", "cy@example.com", 0)
    assert worker.handle({"Records": world.new_records()}) == {"batchItemFailures": []}
    assert overall(world) == Counts(promoters=1, passives=1, detractors=1)
    assert world.differences() == []


def test_a_mark_written_without_a_time_is_timed_then_collected(world):
    world.dimensions = ("overall",)
    world.ddb.put_item(
        TableName=world.aggregates_table,
        Item={**hot("shardId-new"), MARK_PREFIX + "shardId-old": {"S": "1".zfill(48)}},
    )
    clock = Clock()
    worker = aggregator(world, lambda arn, batch: Lane("shardId-new"), clock)
    world.respond("r1", "ana@example.com", 10)
    worker.handle({"Records": world.new_records()})
    assert hot_marks(world, "shardId-new")["shardId-old"] == int(clock.now)  # timed when seen
    clock.now += MARK_HORIZON_SECONDS + 1
    world.respond("r2", "bo@example.com", 10)
    worker.handle({"Records": world.new_records()})
    assert set(hot_marks(world, "shardId-new")) == {"shardId-new"}


# --- (b) the shard lookup off the hot path -------------------------------------------------


class StreamFaults:
    """Throttles (or trims) chosen DynamoDB Streams calls, at botocore's level."""

    def __init__(self):
        self.fail: dict[str, int] = {}  # operation -> how many calls still fail
        self.code = "LimitExceededException"
        self.trimmed: set[str] = set()  # sequence numbers whose GetShardIterator is trimmed
        self.injected = 0

    def before_send(self, request, **kwargs):
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).split(".")[-1]
        body = json.loads(request.body or b"{}")
        code = None
        if self.fail.get(operation, 0) > 0:
            self.fail[operation] -= 1
            code = self.code
        elif operation == "GetShardIterator" and body.get("SequenceNumber") in self.trimmed:
            code = "TrimmedDataAccessException"
        if code is None:
            return None
        self.injected += 1
        payload = json.dumps({"__type": f"com.amazonaws#{code}", "message": "injected"}).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-errortype": code}
        return AWSResponse(request.url, 400, headers, raw=_Raw(payload))


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def faulty_streams(faults: StreamFaults):
    client = boto3.client(
        "dynamodbstreams",
        endpoint_url=STREAMS_ENDPOINT,
        config=Config(retries={"total_max_attempts": 1}),  # every fault reaches our code
    )
    client.meta.events.register_first("before-send.dynamodbstreams", faults.before_send)
    return client


def responses(world, n: int, start: int = 0) -> list:
    for i in range(start, start + n):
        world.respond(f"r{i}", f"c{i}@example.com", 10)
    return world.new_records()


def test_a_throttled_lookup_delivers_the_batch_again_and_it_then_applies_once(world):
    world.dimensions = ("overall",)
    faults = StreamFaults()
    locator = ShardLocator(faulty_streams(faults), sleep=lambda seconds: None)
    worker = aggregator(world, locator)
    batch = responses(world, 3)
    # when: GetRecords is throttled on every try of this invocation
    faults.fail["GetRecords"] = 100
    answer = worker.handle({"Records": batch})
    # then: nothing applied, and every record reported (Lambda delivers the batch again)
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [
        r["dynamodb"]["SequenceNumber"] for r in batch
    ]
    assert overall(world) == Counts()
    faults.fail.clear()
    assert worker.handle({"Records": batch}) == {"batchItemFailures": []}
    assert worker.handle({"Records": batch}) == {"batchItemFailures": []}  # and once more
    assert overall(world) == Counts(promoters=3)
    assert world.differences() == []


def test_a_passing_throttle_is_retried_within_the_invocation(world):
    world.dimensions = ("overall",)
    faults = StreamFaults()
    faults.fail = {"DescribeStream": 2, "GetRecords": 1}
    worker = aggregator(world, ShardLocator(faulty_streams(faults), sleep=lambda seconds: None))
    assert worker.handle({"Records": responses(world, 2)}) == {"batchItemFailures": []}
    assert faults.injected == 3
    assert overall(world) == Counts(promoters=2)


def test_a_trimmed_record_is_located_by_another_of_the_batch(world):
    world.dimensions = ("overall",)
    faults = StreamFaults()
    worker = aggregator(world, ShardLocator(faulty_streams(faults), sleep=lambda seconds: None))
    batch = responses(world, 3)
    faults.trimmed = {batch[-1]["dynamodb"]["SequenceNumber"]}
    assert worker.handle({"Records": batch}) == {"batchItemFailures": []}
    assert faults.injected == 1
    assert overall(world) == Counts(promoters=3)


def test_batches_of_a_shard_read_ahead_or_delivered_again_need_no_stream_read(world):
    world.dimensions = ("overall",)
    locator = ShardLocator(world.streams)
    worker = aggregator(world, locator)
    records = responses(world, 6)
    first, second = records[:3], records[3:]
    assert worker.handle({"Records": first}) == {"batchItemFailures": []}
    reads = locator.reads
    assert reads <= 3  # DescribeStream, GetShardIterator, GetRecords (reading ahead)
    assert worker.handle({"Records": second}) == {"batchItemFailures": []}
    assert worker.handle({"Records": records[2:]}) == {"batchItemFailures": []}  # again
    assert locator.reads == reads
    assert overall(world) == Counts(promoters=6)
    assert world.differences() == []


def test_an_event_naming_its_shard_needs_no_lookup(world):
    world.dimensions = ("overall",)

    def no_lookup(arn, batch):
        raise LaneUnknown("not asked")

    worker = aggregator(world, no_lookup)
    batch = responses(world, 2)
    event = {"Records": batch, "shardId": "shardId-00000001-aa"}  # a tumbling-window event
    assert worker.handle(event) == {"batchItemFailures": []}
    assert worker.handle(event) == {"batchItemFailures": []}
    assert overall(world) == Counts(promoters=2)
    assert set(hot_marks(world, "shardId-00000001-aa")) == {"shardId-00000001-aa"}


def test_under_a_tumbling_window_every_answer_carries_the_empty_state(world):
    """Lambda counts a window's invocation without ``state`` as failed; the last invocation of
    a window may come without records."""
    world.dimensions = ("overall",)

    def no_lookup(arn, batch):
        raise LaneUnknown("not asked")

    worker = aggregator(world, no_lookup)
    window = {"start": "2026-12-03T10:00:00Z", "end": "2026-12-03T10:15:00Z"}
    shard = "shardId-00000001-aa"
    batch = responses(world, 2)
    event = {"Records": batch, "shardId": shard, "window": window, "state": {}}
    assert worker.handle(event) == {"batchItemFailures": [], "state": {}}
    final = {**event, "Records": [], "isFinalInvokeForWindow": True}
    assert worker.handle(final) == {"batchItemFailures": [], "state": {}}
    assert overall(world) == Counts(promoters=2)
    plain = {"Records": responses(world, 1), "shardId": shard}  # no window: no state either
    assert worker.handle(plain) == {"batchItemFailures": []}
