"""AggregatesTable access: the only module that talks DynamoDB for aggregates.

Item: pk ``<dimension>#<value>``, sk ``<granularity>#<period>``, the six counters (numbers),
and one high-water mark per stream shard, ``hwm#<shard id>`` = the padded sequence number of
the last record of that shard applied to this item (docs/aggregation.md).
"""

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.aggregates import COUNTERS, AggregateKey, Counts, MarkConflict
from nps_sync.core.errors import StorageUnavailable
from nps_sync.store import dynamo

MARK_PREFIX = "hwm#"
# All-time items also carry ``listed_dimension`` = their dimension: the sparse index
# ``by_dimension`` lists a dimension's values from it (GET /segments, docs/dashboard.md).
LISTED_GRANULARITY = "all"
LISTING_INDEX = "by_dimension"


def _counts(item: dict[str, Any]) -> Counts:
    return Counts(*(int(item.get(name, {}).get("N", "0")) for name in COUNTERS))


class AggregatesStore:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")
        self.writes = 0  # UpdateItem calls made, for metrics and the cost tests

    # --- the aggregator's write ----------------------------------------------------------

    def add(
        self,
        key: AggregateKey,
        lane: str,
        counts: Counts,
        mark: str,
        *,
        below: str | None = None,
        expected: str | None = None,
        forget: tuple[str, ...] = (),
    ) -> Counts:
        """ADD the counts and SET this lane's mark, in one conditional update; returns the
        counters after it.

        Condition: the stored mark is below ``below`` (or absent), or equals ``expected``.
        A failed condition raises MarkConflict with the stored mark (and counters).
        """
        names = {"#m": MARK_PREFIX + lane, "#d": "dimension", "#v": "value"}
        values: dict[str, Any] = {
            ":mark": {"S": mark},
            ":d": {"S": key.dimension},
            ":v": {"S": key.value},
            ":g": {"S": key.granularity},
            ":p": {"S": key.period},
        }
        adds = []  # only the counters that move: a smaller expression, the same item
        for i, (name, amount) in enumerate(counts.as_dict().items()):
            if not amount:
                continue
            names[f"#c{i}"] = name
            values[f":c{i}"] = {"N": str(amount)}
            adds.append(f"#c{i} :c{i}")
        if below is not None:
            condition = "attribute_not_exists(#m) OR #m < :below"
            values[":below"] = {"S": below}
        elif expected is not None:
            condition = "#m = :expected"
            values[":expected"] = {"S": expected}
        else:
            condition = "attribute_not_exists(#m)"
        expression = (
            "SET #m = :mark, #d = :d, #v = :v, granularity = :g, period = :p"
            + (", listed_dimension = :d" if key.granularity == LISTED_GRANULARITY else "")
            + (" ADD " + ", ".join(adds) if adds else "")
        )
        forgotten = [f"#f{i}" for i in range(len(forget))]
        names.update({f"#f{i}": MARK_PREFIX + shard for i, shard in enumerate(forget)})
        if forgotten:
            expression += " REMOVE " + ", ".join(forgotten)
        self.writes += 1
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": key.pk}, "sk": {"S": key.sk}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",  # every counter, also those a write left unchanged
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise StorageUnavailable("DynamoDB update_item failed") from error
            item = error.response.get("Item")
            if item is None:
                item = self._get(key)
            stored = (item or {}).get(MARK_PREFIX + lane, {}).get("S")
            raise MarkConflict(stored, _counts(item or {})) from error
        except BotoCoreError as error:
            raise StorageUnavailable("DynamoDB update_item failed") from error
        return _counts(answer.get("Attributes") or {})

    def _get(self, key: AggregateKey) -> dict[str, Any] | None:
        return self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": key.pk}, "sk": {"S": key.sk}},
            ConsistentRead=True,
        ).get("Item")

    # --- reads for the API (Query, never Scan) -------------------------------------------

    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Counts]:
        """period -> counts for one dimension value, periods first..last (inclusive) or all."""
        key = AggregateKey(dimension, value, granularity, "")
        low = f"{granularity}#{first}" if first is not None else f"{granularity}#"
        high = f"{granularity}#{last}" if last is not None else f"{granularity}#\U0010ffff"
        result: dict[str, Counts] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": key.pk},
                ":low": {"S": low},
                ":high": {"S": high},
            },
        }
        for item in self._pages("query", kwargs):
            result[item["sk"]["S"].split("#", 1)[1]] = _counts(item)
        return result

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
        for item in self._pages("scan", kwargs):
            yield AggregateKey.parse(item["pk"]["S"], item["sk"]["S"]), _counts(item)

    def replace(self, key: AggregateKey, stored: Counts | None, expected: Counts) -> bool:
        """Set the counters to ``expected`` if they still are ``stored``; marks stay as they are."""
        names, values, sets, checks = {}, {}, [], []
        for i, name in enumerate(COUNTERS):
            names[f"#c{i}"] = name
            values[f":e{i}"] = {"N": str(getattr(expected, name))}
            sets.append(f"#c{i} = :e{i}")
            if stored is not None:
                values[f":s{i}"] = {"N": str(getattr(stored, name))}
                checks.append(f"(#c{i} = :s{i} OR (attribute_not_exists(#c{i}) AND :s{i} = :zero))")
        if stored is not None:
            values[":zero"] = {"N": "0"}
            condition = " AND ".join(checks)
        else:
            condition = "attribute_not_exists(pk)"
        names.update({"#d": "dimension", "#v": "value"})
        values.update(
            {
                ":d": {"S": key.dimension},
                ":v": {"S": key.value},
                ":g": {"S": key.granularity},
                ":p": {"S": key.period},
            }
        )
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": key.pk}, "sk": {"S": key.sk}},
                UpdateExpression="SET "
                + ", ".join(sets)
                + ", #d = :d, #v = :v, granularity = :g, period = :p"
                + (", listed_dimension = :d" if key.granularity == LISTED_GRANULARITY else ""),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise StorageUnavailable("DynamoDB update_item failed") from error
        return True

    # --- plumbing -------------------------------------------------------------------------

    def _pages(self, operation: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return dynamo.pages(self.client, operation, kwargs)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return dynamo.call(self.client, operation, **kwargs)
