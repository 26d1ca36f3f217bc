"""The local event source mappings keep Lambda's semantics (moto underneath)."""

import json
import threading

import boto3
import pytest

from local.aws import Emulator
from local.pollers import SqsPoller, StreamPoller
from local.template import EventSource


class Subscriber:
    """A function that records what it was given and fails the items it is told to."""

    name = "Subscriber"

    def __init__(self, fail=(), fail_times=1, raise_times=0, key=None):
        self.fail, self.fail_times, self.raise_times = set(fail), fail_times, raise_times
        self.batches: list[list[str]] = []
        self.key = key

    def invoke(self, event):
        ids = [self.key(r) for r in event["Records"]]
        self.batches.append(ids)
        if self.raise_times:
            self.raise_times -= 1
            raise RuntimeError("crash mid-batch")
        failed = [r for r, i in zip(event["Records"], ids, strict=True) if i in self.fail]
        if failed and self.fail_times:
            self.fail_times -= 1
            return {"batchItemFailures": [{"itemIdentifier": self._identifier(r)} for r in failed]}
        return {"batchItemFailures": []}

    @staticmethod
    def _identifier(record):
        return record.get("messageId") or record["dynamodb"]["SequenceNumber"]


def stream_key(record):
    return record["dynamodb"]["Keys"]["pk"]["S"]


@pytest.fixture
def stream(aws):
    ddb = boto3.client("dynamodb")
    table = aws.refs["RecordsTable"]
    for n in range(1, 6):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"item-{n}"}, "sk": {"S": "RESP"}})
    return aws.attributes[("RecordsTable", "StreamArn")]


def stream_poller(subscriber, arn, **mapping):
    spec = EventSource(
        function="Subscriber",
        source=arn,
        batch_size=mapping.pop("batch_size", 5),
        report_failures=True,
        max_retries=mapping.pop("max_retries", 3),
        bisect=False,
        **mapping,
    )
    return StreamPoller(subscriber, spec, arn, Emulator(), threading.Event(), idle_seconds=0)


def drain(poller, limit=20):
    for _ in range(limit):
        if not poller.poll_once():
            return
    raise AssertionError("the poller never went idle")


def test_stream_retries_from_the_lowest_reported_failure(stream):
    subscriber = Subscriber(fail={"item-3", "item-5"}, key=stream_key)
    drain(stream_poller(subscriber, stream))

    all_items = [f"item-{n}" for n in range(1, 6)]
    assert subscriber.batches == [all_items, all_items[2:]]


def test_stream_retries_a_batch_that_raised_then_moves_on(stream):
    subscriber = Subscriber(raise_times=2, key=stream_key)
    drain(stream_poller(subscriber, stream, batch_size=2))

    assert subscriber.batches[:3] == [["item-1", "item-2"]] * 3
    assert subscriber.batches[3:] == [["item-3", "item-4"], ["item-5"]]


def test_stream_skips_a_poison_batch_after_maximum_retries(stream):
    subscriber = Subscriber(fail={"item-1"}, fail_times=99, key=stream_key)
    drain(stream_poller(subscriber, stream, batch_size=5, max_retries=2))

    assert len(subscriber.batches) == 3  # the first try and two retries, then it moves on


def test_stream_delivers_only_what_the_filter_criteria_match(stream, aws):
    ddb = boto3.client("dynamodb")
    ddb.put_item(
        TableName=aws.refs["RecordsTable"], Item={"pk": {"S": "raw-1"}, "sk": {"S": "RAW#1"}}
    )
    pattern = '{"dynamodb": {"Keys": {"sk": {"S": ["RESP", "PROFILE"]}}}}'
    subscriber = Subscriber(key=stream_key)
    drain(stream_poller(subscriber, stream, batch_size=10, filters=(pattern,)))

    assert subscriber.batches == [[f"item-{n}" for n in range(1, 6)]]  # no raw-1


def test_stream_waits_the_batching_window_for_a_fuller_batch(stream, aws):
    subscriber = Subscriber(key=stream_key)
    poller = stream_poller(subscriber, stream, batch_size=10, window_seconds=30)
    assert poller.poll_once(batching=True) is False  # 5 of 10: the window is not over
    poller.waiting_since = {shard: since - 30 for shard, since in poller.waiting_since.items()}
    assert poller.poll_once(batching=True) is True  # now it is

    assert subscriber.batches == [[f"item-{n}" for n in range(1, 6)]]


@pytest.fixture
def queue(aws):
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="test-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    url = sqs.create_queue(
        QueueName="test-queue",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 2}
            ),
        },
    )["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return sqs, url, dlq, arn["Attributes"]["QueueArn"]


class Windowed(Subscriber):
    """A function under a tumbling window: it answers a state (counting its batches) unless
    told to forget it."""

    def __init__(self, forget_state_times=0, **kwargs):
        super().__init__(**kwargs)
        self.events: list[dict] = []
        self.forget_state_times = forget_state_times

    def invoke(self, event):
        self.events.append(event)
        answer = super().invoke(event)
        if self.forget_state_times:
            self.forget_state_times -= 1
            return answer
        return {**answer, "state": {"batches": event["state"].get("batches", 0) + 1}}


def test_a_tumbling_window_names_the_shard_and_carries_the_state(stream):
    subscriber = Windowed(key=stream_key)
    poller = stream_poller(subscriber, stream, batch_size=2, tumbling_seconds=900)
    drain(poller)

    shards = boto3.client("dynamodbstreams").describe_stream(StreamArn=stream)
    shard_ids = {s["ShardId"] for s in shards["StreamDescription"]["Shards"]}
    assert [len(b) for b in subscriber.batches] == [2, 2, 1]
    assert all(
        e["shardId"] in shard_ids and e["eventSourceARN"] == stream for e in subscriber.events
    )
    assert [e["state"] for e in subscriber.events] == [{}, {"batches": 1}, {"batches": 2}]
    assert {(e["window"]["start"], e["isFinalInvokeForWindow"]) for e in subscriber.events} == {
        (subscriber.events[0]["window"]["start"], False)
    }


def test_an_answer_without_the_windows_state_is_a_failed_invocation(stream):
    subscriber = Windowed(forget_state_times=1, key=stream_key)
    drain(stream_poller(subscriber, stream, tumbling_seconds=900))

    all_items = [f"item-{n}" for n in range(1, 6)]
    assert subscriber.batches == [all_items, all_items]  # delivered again, as Lambda does


def test_a_window_that_ended_gets_its_final_invocation_before_the_next_batch(stream, aws):
    subscriber = Windowed(key=stream_key)
    poller = stream_poller(subscriber, stream, tumbling_seconds=900)
    drain(poller)
    shard = subscriber.events[0]["shardId"]
    poller.windows[shard] = (0.0, 900.0)  # the window the first batch had has ended
    boto3.client("dynamodb").put_item(
        TableName=aws.refs["RecordsTable"], Item={"pk": {"S": "item-6"}, "sk": {"S": "RESP"}}
    )
    drain(poller)

    final, after = subscriber.events[1], subscriber.events[2]
    assert final["isFinalInvokeForWindow"] is True and final["Records"] == []
    assert final["state"] == {"batches": 1} and final["window"]["start"] == "1970-01-01T00:00:00Z"
    assert after["state"] == {} and after["window"]["start"] != "1970-01-01T00:00:00Z"
    assert subscriber.batches[-1] == ["item-6"]


def test_sqs_failed_message_is_redelivered_alone_and_ends_in_the_dlq(queue):
    sqs, _, dlq, arn = queue
    subscriber = Subscriber(fail={"b"}, fail_times=99, key=lambda r: r["body"])
    spec = EventSource(
        function="Subscriber",
        source=arn,
        batch_size=10,
        report_failures=True,
        max_retries=None,
        bisect=False,
    )
    poller = SqsPoller(subscriber, spec, arn, Emulator(), threading.Event(), idle_seconds=0)

    drain(poller)

    assert sorted(subscriber.batches[0]) == ["a", "b", "c"]
    assert all(batch == ["b"] for batch in subscriber.batches[1:])
    assert len(subscriber.batches) == 2  # maxReceiveCount 2: then it moved to the DLQ
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in moved] == ["b"]


def test_stream_records_after_a_failed_transaction_still_arrive(aws, stream):
    """moto rolls a failed transaction back by swapping in a copy of the table."""
    ddb = boto3.client("dynamodb")
    table = aws.refs["RecordsTable"]
    subscriber = Subscriber(key=stream_key)
    poller = stream_poller(subscriber, stream)
    drain(poller)
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "item-1"}, "sk": {"S": "RESP"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )
    ddb.put_item(TableName=table, Item={"pk": {"S": "item-6"}, "sk": {"S": "RESP"}})

    drain(poller)

    assert subscriber.batches[-1] == ["item-6"]
