"""DynamoDB stream records as Lambda delivers them, and which shard a batch came from.

Lambda's DynamoDB event names no shard, yet exactly-once needs a per-shard mark (one batch
always comes from one shard, and one shard is processed by one invocation at a time with
ParallelizationFactor 1). ShardLocator finds the shard that holds a batch's first record: it
asks the stream (GetShardIterator AT_SEQUENCE_NUMBER + GetRecords, Limit 1) and caches.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError


@dataclass(frozen=True)
class Change:
    index: int
    sequence: str
    event_name: str  # INSERT | MODIFY | REMOVE
    keys: Mapping[str, Any]
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @property
    def pk(self) -> str:
        return self.keys.get("pk", {}).get("S", "")

    @property
    def sk(self) -> str:
        return self.keys.get("sk", {}).get("S", "")


def changes(records: list[Mapping[str, Any]]) -> list[Change]:
    result = []
    for index, record in enumerate(records):
        body = record["dynamodb"]
        result.append(
            Change(
                index=index,
                sequence=str(body["SequenceNumber"]),
                event_name=record.get("eventName", ""),
                keys=body.get("Keys", {}),
                old=body.get("OldImage"),
                new=body.get("NewImage"),
            )
        )
    return result


@dataclass(frozen=True)
class Lane:
    """A shard, and the shards before it whose records can no longer be delivered."""

    shard_id: str
    ancestors: tuple[str, ...] = ()


class LaneUnknown(Exception):
    pass


class ShardLocator:
    def __init__(self, client: Any = None):
        self._client = client
        self._shards: dict[str, list[dict[str, Any]]] = {}
        self._last: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodbstreams")
        return self._client

    def __call__(self, stream_arn: str, record: Mapping[str, Any]) -> Lane:
        sequence = str(record["dynamodb"]["SequenceNumber"])
        for refresh in (False, True):
            for shard in self._candidates(stream_arn, sequence, refresh):
                if self._holds(stream_arn, shard["ShardId"], sequence):
                    self._last[stream_arn] = shard["ShardId"]
                    return Lane(shard["ShardId"], self._ancestors(stream_arn, shard))
        raise LaneUnknown(f"no shard of the stream holds sequence number {sequence}")

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
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _holds(self, arn: str, shard_id: str, sequence: str) -> bool:
        try:
            iterator = self.client.get_shard_iterator(
                StreamArn=arn,
                ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=sequence,
            )["ShardIterator"]
            for _ in range(3):
                page = self.client.get_records(ShardIterator=iterator, Limit=1)
                if page.get("Records"):
                    return str(page["Records"][0]["dynamodb"]["SequenceNumber"]) == sequence
                iterator = page.get("NextShardIterator")
                if not iterator:
                    return False
        except (ClientError, BotoCoreError):
            return False
        return False

    def _ancestors(self, arn: str, shard: dict[str, Any]) -> tuple[str, ...]:
        by_id = {s["ShardId"]: s for s in self._shards.get(arn, [])}
        result, parent = [], shard.get("ParentShardId")
        while parent and parent not in result and len(result) < 32:
            result.append(parent)
            parent = by_id.get(parent, {}).get("ParentShardId")
        return tuple(result)
