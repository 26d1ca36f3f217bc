"""DynamoDB stream records as Lambda delivers them, and which shard a batch came from.

Lambda's DynamoDB event names no shard (unless the mapping has a tumbling window), yet
exactly-once needs a per-shard mark (one batch always comes from one shard, and one shard is
processed by one invocation at a time with ParallelizationFactor 1). ShardLocator finds the
shard that holds a batch's records, from what it remembers where it can, else by asking the
stream; when the stream cannot tell (throttled, trimmed), the batch is delivered again.

Each record's old and new image is read once, here, into the record it holds (a response or a
customer profile, store/items.py); everything downstream takes those.
"""

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.models import StoredProfile, StoredResponse
from nps_sync.store import aws
from nps_sync.store.items import PROFILE_SK, RESPONSE_SK, item_key, stored_profile, stored_response

_NEITHER = (None, None)


@dataclass(frozen=True, slots=True)
class Change:
    """One stream record; its old and new image as the response or customer profile they hold
    (None: no such image, or an item of another kind)."""

    index: int
    sequence: str
    event_name: str  # INSERT | MODIFY | REMOVE
    pk: str
    sk: str
    old_response: StoredResponse | None = None
    new_response: StoredResponse | None = None
    old_profile: StoredProfile | None = None
    new_profile: StoredProfile | None = None


def changes(records: list[Mapping[str, Any]]) -> list[Change]:
    result = []
    for index, record in enumerate(records):
        body = record["dynamodb"]
        pk, sk = item_key(body.get("Keys", {}))
        old, new = body.get("OldImage"), body.get("NewImage")
        responses = (stored_response(old), stored_response(new)) if sk == RESPONSE_SK else _NEITHER
        profiles = (stored_profile(old), stored_profile(new)) if sk == PROFILE_SK else _NEITHER
        event = record.get("eventName", "")
        sequence = str(body["SequenceNumber"])
        result.append(Change(index, sequence, event, pk, sk, *responses, *profiles))
    return result


@dataclass(frozen=True)
class Lane:
    """A shard, and the shards before it whose records can no longer be delivered."""

    shard_id: str
    ancestors: tuple[str, ...] = ()


class LaneUnknown(Exception):
    """The stream could not tell the batch's shard now: the batch is delivered again."""


# Errors of a stream read that pass: the read is tried again, then the batch is.
_PASSING = {
    "LimitExceededException",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TrimmedDataAccessException",  # the probed record aged out: another record may not have
}
READ_ATTEMPTS = 3
READ_AHEAD = 1000  # records of a probed shard remembered, so its next batches need no read
REMEMBERED = 20_000  # sequence numbers remembered per process


class ShardLocator:
    """A batch's shard, with as few stream reads as it can (docs/aggregation.md "Lane"):

    1. a sequence number of the batch seen already (a redelivery, or read ahead): no read;
    2. else the shards whose range can hold the batch's newest record (DescribeStream, cached,
       read again only when no known shard can) are probed: GetShardIterator AT_SEQUENCE_NUMBER
       + GetRecords, which also remembers up to READ_AHEAD records of that shard that follow;
    3. a read that fails and passes (a throttle, a trimmed record) is tried again, with the
       batch's other records; if the shard is still unknown, LaneUnknown: the aggregator
       applies nothing and reports the whole batch, which Lambda delivers again.
    """

    def __init__(self, client: Any = None, sleep: Callable[[float], None] = time.sleep):
        self._client = client
        self._sleep = sleep
        self._shards: dict[str, list[dict[str, Any]]] = {}
        self._last: dict[str, str] = {}
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.reads = 0  # stream calls made, for the tests

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodbstreams")
        return self._client

    def __call__(self, stream_arn: str, records: list[Mapping[str, Any]]) -> Lane:
        sequences = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
        known = {self._seen[(stream_arn, s)] for s in sequences if (stream_arn, s) in self._seen}
        if len(known) == 1:  # (two shards for one batch: ask the stream)
            return self._lane(stream_arn, known.pop(), sequences)
        failures: list[str] = []
        for sequence in reversed(sequences[-READ_ATTEMPTS:]):  # the newest first
            try:
                shard_id = self._locate(stream_arn, sequence)
            except _Passing as error:
                failures.append(str(error))
                continue
            if shard_id is not None:
                return self._lane(stream_arn, shard_id, sequences)
            failures.append(f"no shard of the stream holds sequence number {sequence}")
        raise LaneUnknown("; ".join(failures))

    def _lane(self, arn: str, shard_id: str, sequences: list[str]) -> Lane:
        self._last[arn] = shard_id
        self._remember(arn, shard_id, sequences)
        by_id = {s["ShardId"]: s for s in self._shards.get(arn, [])}
        return Lane(shard_id, self._ancestors(arn, by_id.get(shard_id, {})))

    def _remember(self, arn: str, shard_id: str, sequences: Iterable[str]) -> None:
        for sequence in sequences:
            self._seen[(arn, sequence)] = shard_id
            self._seen.move_to_end((arn, sequence))
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)

    def _locate(self, arn: str, sequence: str) -> str | None:
        for refresh in (False, True):
            for shard in self._candidates(arn, sequence, refresh):
                if self._holds(arn, shard["ShardId"], sequence):
                    return shard["ShardId"]
        return None

    def _candidates(self, arn: str, sequence: str, refresh: bool) -> list[dict[str, Any]]:
        if refresh or arn not in self._shards:
            self._shards[arn] = self._describe(arn)
        number = int(sequence)
        shards = [
            s
            for s in self._shards[arn]
            if int(s["SequenceNumberRange"].get("StartingSequenceNumber", "0")) <= number
            and number <= int(s["SequenceNumberRange"].get("EndingSequenceNumber", number))
        ]
        last = self._last.get(arn)
        return sorted(shards, key=lambda s: s["ShardId"] != last)

    def _describe(self, arn: str) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            description = self._read("describe_stream", **kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _holds(self, arn: str, shard_id: str, sequence: str) -> bool:
        try:
            iterator = self._read(
                "get_shard_iterator",
                StreamArn=arn,
                ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=sequence,
            )["ShardIterator"]
            for _ in range(3):
                page = self._read("get_records", ShardIterator=iterator, Limit=READ_AHEAD)
                if page.get("Records"):
                    found = [str(r["dynamodb"]["SequenceNumber"]) for r in page["Records"]]
                    if found[0] != sequence:
                        return False
                    self._remember(arn, shard_id, found)
                    return True
                iterator = page.get("NextShardIterator")
                if not iterator:
                    return False
        except ClientError:  # not a sequence number of this shard (ValidationException, ...)
            return False
        return False

    def _read(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One stream call; one that fails and passes is tried again, then raises _Passing."""
        for attempt in range(READ_ATTEMPTS):
            self.reads += 1
            try:
                return getattr(self.client, operation)(**kwargs)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in _PASSING:
                    raise
                failure = f"{operation}: {code}"
                if code == "TrimmedDataAccessException":
                    raise _Passing(failure) from error
            except BotoCoreError as error:
                failure = f"{operation}: {error}"
            if attempt + 1 < READ_ATTEMPTS:
                self._sleep(0.1 * 4**attempt)
        raise _Passing(failure)

    def _ancestors(self, arn: str, shard: dict[str, Any]) -> tuple[str, ...]:
        by_id = {s["ShardId"]: s for s in self._shards.get(arn, [])}
        result, parent = [], shard.get("ParentShardId")
        while parent and parent not in result and len(result) < 32:
            result.append(parent)
            parent = by_id.get(parent, {}).get("ParentShardId")
        return tuple(result)


class _Passing(Exception):
    """A stream read failed in a way that passes (throttled, trimmed)."""
