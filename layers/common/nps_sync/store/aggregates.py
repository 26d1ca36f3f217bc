"""NPS aggregates in AggregatesTable: pk ``<dimension>#<value>``, sk
``<granularity>#<period>#<n>`` (days and months, each in up to COUNTER_SHARDS items), the six
counters and the stream marks (store/counters.py, shared with the outcome counters), read by
Query for the API and by Scan for reconcile.
"""

import operator
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nps_sync.core.aggregates import COUNTERS, AggregateKey, Counts
from nps_sync.core.periods import ALL, STORED
from nps_sync.store import aws, dynamo
from nps_sync.store.counters import Counters, split_sk

LISTING_READS = 8  # the values' all-time Queries of one listing run this many at a time

LISTING_INDEX = "dimension_values"  # sparse, keys only, of the monthly items' listed_dimension


def _counts(item: dict[str, Any]) -> Counts:
    return Counts(*(int(item.get(name, {}).get("N", "0")) for name in COUNTERS))


def _moving(counts: Counts) -> dict[str, int]:
    """Only the counters that move are in the update: a smaller expression, the same item."""
    return {name: amount for name, amount in counts.as_dict().items() if amount}


class AggregatesStore:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.counters = Counters(
            self.client, table_name, _counts, _moving, plus=operator.add, returns=True, listed=True
        )
        self.add = self.counters.add  # the aggregator's write (core.aggregates.apply_key)

    @property
    def writes(self) -> int:
        return self.counters.writes

    # --- reads for the API (Query, never Scan) -------------------------------------------

    def series(
        self,
        dimension: str,
        value: str,
        granularity: str,
        first: str | None,
        last: str | None,
        consistent: bool = False,
    ) -> dict[str, Counts]:
        """period -> counts for one dimension value, periods first..last (inclusive) or all."""
        pk = AggregateKey(dimension, value, granularity, "").pk
        return self.counters.series(pk, granularity, first, last, consistent)

    def listing(self, dimension: str, limit: int) -> tuple[dict[str, Counts], bool]:
        """value -> all-time counts of up to ``limit`` values of a dimension (by value), and
        whether more are left: the values from the sparse keys-only index dimension_values (one
        entry per value, month and counter shard, written when the item is made), then each
        value's months summed (one Query a value, LISTING_READS at a time)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": LISTING_INDEX,
            "KeyConditionExpression": "listed_dimension = :d",
            "ExpressionAttributeValues": {":d": {"S": dimension}},
        }
        values: list[str] = []
        truncated = False
        while not truncated:
            page = self._call("query", **kwargs)
            for item in page.get("Items", []):
                value = item["pk"]["S"].split("#", 1)[1]
                if values and values[-1] == value:
                    continue  # the index sorts by pk: a value's months are together
                if len(values) == limit:
                    truncated = True
                    break
                values.append(value)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        with ThreadPoolExecutor(LISTING_READS) as pool:
            totals = pool.map(lambda v: self.series(dimension, v, ALL, None, None), values)
            found = {v: total.get(ALL, Counts()) for v, total in zip(values, totals, strict=True)}
        return found, truncated

    # --- reconcile ------------------------------------------------------------------------

    def scan_items(self) -> Iterator[dict[str, Any]]:
        """Every item of the table as stored, NPS and outcome counters alike (parallel
        segments): reconcile reads both kinds from this one Scan."""
        return dynamo.scan(self.client, {"TableName": self.table_name, "ConsistentRead": True})

    @staticmethod
    def counter(item: dict[str, Any]) -> tuple[AggregateKey, int | None, Counts] | None:
        """A stored NPS counter item: its key, its counter shard and its counts; None for a
        granularity that is not stored (written before periods.STORED)."""
        granularity, period, shard = split_sk(item["sk"]["S"])
        if granularity not in STORED:
            return None
        key = AggregateKey.parse(item["pk"]["S"], f"{granularity}#{period}")
        return key, shard, _counts(item)

    def replace(
        self, key: AggregateKey, shard: int | None, stored: Counts | None, expected: Counts
    ) -> bool:
        """Set the counters of the key's item ``shard`` to ``expected`` if they still are
        ``stored``; marks stay as they are."""
        return self.counters.replace(
            key, shard, stored.as_dict() if stored is not None else None, expected.as_dict()
        )

    # --- plumbing -------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return dynamo.call(self.client, operation, **kwargs)
