"""NPS aggregates in AggregatesTable: pk ``<dimension>#<value>``, sk
``<granularity>#<period>``, the six counters and the stream marks (store/counters.py, shared
with the outcome counters), read by Query for the API and by Scan for reconcile.
"""

from collections.abc import Iterator
from typing import Any

import boto3

from nps_sync.core.aggregates import COUNTERS, AggregateKey, Counts
from nps_sync.store import dynamo
from nps_sync.store.counters import Counters

LISTING_INDEX = "by_dimension"  # sparse, of the all-time items' listed_dimension


def _counts(item: dict[str, Any]) -> Counts:
    return Counts(*(int(item.get(name, {}).get("N", "0")) for name in COUNTERS))


def _moving(counts: Counts) -> dict[str, int]:
    """Only the counters that move are in the update: a smaller expression, the same item."""
    return {name: amount for name, amount in counts.as_dict().items() if amount}


class AggregatesStore:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")
        self.counters = Counters(
            self.client, table_name, _counts, _moving, returns=True, listed=True
        )
        self.add = self.counters.add  # the aggregator's write (core.aggregates.apply_key)

    @property
    def writes(self) -> int:
        return self.counters.writes

    # --- reads for the API (Query, never Scan) -------------------------------------------

    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Counts]:
        """period -> counts for one dimension value, periods first..last (inclusive) or all."""
        pk = AggregateKey(dimension, value, granularity, "").pk
        return self.counters.series(pk, granularity, first, last)

    def listing(self, dimension: str, limit: int) -> tuple[dict[str, Counts], bool]:
        """value -> all-time counts of up to ``limit`` values of a dimension (by value), and
        whether more are left (one Query on the sparse index by_dimension)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": LISTING_INDEX,
            "KeyConditionExpression": "listed_dimension = :d",
            "ExpressionAttributeValues": {":d": {"S": dimension}},
        }
        found: dict[str, Counts] = {}
        while len(found) < limit:
            page = self._call("query", **kwargs, Limit=limit - len(found))
            for item in page.get("Items", []):
                found[item["pk"]["S"].split("#", 1)[1]] = _counts(item)
            if "LastEvaluatedKey" not in page:
                return found, False
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found, True

    # --- reconcile ------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[AggregateKey, Counts]]:
        kwargs = {"TableName": self.table_name, "ConsistentRead": True}
        for item in dynamo.scan(self.client, kwargs):  # parallel segments
            yield AggregateKey.parse(item["pk"]["S"], item["sk"]["S"]), _counts(item)

    def replace(self, key: AggregateKey, stored: Counts | None, expected: Counts) -> bool:
        """Set the counters to ``expected`` if they still are ``stored``; marks stay as they are."""
        return self.counters.replace(
            key, stored.as_dict() if stored is not None else None, expected.as_dict()
        )

    # --- plumbing -------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return dynamo.call(self.client, operation, **kwargs)
