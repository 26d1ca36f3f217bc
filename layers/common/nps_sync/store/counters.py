"""Counter items in AggregatesTable, the one writer of the exactly-once protocol.

NPS aggregates (store/aggregates.py) and outcome counters (store/outcomes.py) are the same
kind of item: pk/sk, the key's ``dimension``/``value``/``granularity``/``period``, one number
attribute per counter and one high-water mark per stream shard, ``hwm#<shard id>`` = the padded
sequence number of the last record of that shard applied to it (docs/aggregation.md). Both are
written with ``add`` (ADD the amounts and SET the lane's mark in one conditional update), read
with ``series`` and repaired by reconcile with ``replace``; only the counters' types differ.
"""

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from nps_sync.core.aggregates import MarkConflict
from nps_sync.store import dynamo

MARK_PREFIX = "hwm#"
# All-time NPS items also carry ``listed_dimension`` = their dimension: the sparse index
# ``by_dimension`` lists a dimension's values from it (GET /segments, docs/dashboard.md).
LISTED_GRANULARITY = "all"
META = {"pk", "sk", "dimension", "value", "granularity", "period", "listed_dimension"}

Item = dict[str, Any]


class CounterKey(Protocol):
    dimension: str
    value: str
    granularity: str
    period: str

    @property
    def pk(self) -> str: ...

    @property
    def sk(self) -> str: ...


def amounts_of(item: Mapping[str, Any]) -> dict[str, int]:
    """The counters an item holds (number attributes that are not marks)."""
    return {
        name: int(float(value["N"]))
        for name, value in item.items()
        if "N" in value and name not in META and not name.startswith(MARK_PREFIX)
    }


def mark_of(item: Mapping[str, Any] | None, lane: str) -> str | None:
    return (item or {}).get(MARK_PREFIX + lane, {}).get("S")


class Counters:
    """One table's counter items of one kind: ``parse`` reads an item's counters (Counts,
    tallies), ``listed`` adds ``listed_dimension`` to all-time items."""

    def __init__(
        self, client: Any, table_name: str, parse: Callable[[Item], Any], *, listed: bool = False
    ):
        self.client = client
        self.table_name = table_name
        self.parse = parse
        self.listed = listed
        self.writes = 0  # UpdateItem calls made by add, for the cost tests

    def add(
        self,
        key: CounterKey,
        lane: str,
        amounts: Mapping[str, int],
        mark: str,
        *,
        below: str | None = None,
        expected: str | None = None,
        forget: tuple[str, ...] = (),
        returns: bool = False,
    ) -> Any:
        """ADD ``amounts`` and SET this lane's mark, in one conditional update; with
        ``returns``, the counters after it (every one, also those the write left unchanged).

        Condition: the stored mark is below ``below`` (or absent), or equals ``expected``.
        A failed condition raises MarkConflict with the stored mark and counters.
        """
        names = {"#m": MARK_PREFIX + lane, **_meta_names()}
        values: dict[str, Any] = {":mark": {"S": mark}, **self._meta_values(key)}
        adds = []
        for i, (name, amount) in enumerate(amounts.items()):
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
        expression = "SET #m = :mark, " + self._meta_sets(key)
        if adds:
            expression += " ADD " + ", ".join(adds)
        names.update({f"#f{i}": MARK_PREFIX + shard for i, shard in enumerate(forget)})
        if forget:
            expression += " REMOVE " + ", ".join(f"#f{i}" for i in range(len(forget)))
        self.writes += 1
        try:
            answer = dynamo.call(
                self.client,
                "update_item",
                passing=("ConditionalCheckFailedException",),
                TableName=self.table_name,
                Key=_key(key),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **({"ReturnValues": "ALL_NEW"} if returns else {}),
            )
        except ClientError as error:
            item = error.response.get("Item")
            if item is None:  # an SDK without the old item on a failed condition
                item = self.get(key)
            raise MarkConflict(mark_of(item, lane), self.parse(item or {})) from error
        return self.parse(answer.get("Attributes") or {}) if returns else None

    def get(self, key: CounterKey) -> Item | None:
        return dynamo.call(
            self.client, "get_item", TableName=self.table_name, Key=_key(key), ConsistentRead=True
        ).get("Item")

    def series(
        self, pk: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Any]:
        """period -> counters of one pk's items of a granularity, periods first..last or all."""
        low = f"{granularity}#{first}" if first is not None else f"{granularity}#"
        high = f"{granularity}#{last}" if last is not None else f"{granularity}#\U0010ffff"
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":low": {"S": low},
                ":high": {"S": high},
            },
        }
        return {
            item["sk"]["S"].split("#", 1)[1]: self.parse(item)
            for item in dynamo.pages(self.client, "query", request)
        }

    def replace(
        self, key: CounterKey, stored: Mapping[str, int] | None, expected: Mapping[str, int]
    ) -> bool:
        """Set the counters to ``expected`` if they still are ``stored`` (absent = 0, and
        ``stored`` None = the item does not exist); marks stay as they are."""
        if not expected and not stored and stored is not None:
            return True
        names, values = _meta_names(), self._meta_values(key)
        sets, checks = [], []
        for i, name in enumerate(expected if stored is None else sorted({*stored, *expected})):
            names[f"#c{i}"] = name
            values[f":e{i}"] = {"N": str(expected.get(name, 0))}
            sets.append(f"#c{i} = :e{i}")
            if stored is not None:
                values[f":s{i}"] = {"N": str(stored.get(name, 0))}
                checks.append(f"(#c{i} = :s{i} OR (attribute_not_exists(#c{i}) AND :s{i} = :zero))")
        if stored is None:
            condition = "attribute_not_exists(pk)"
        else:
            values[":zero"] = {"N": "0"}
            condition = " AND ".join(checks) or "attribute_exists(pk)"
        return dynamo.update_if(
            self.client,
            TableName=self.table_name,
            Key=_key(key),
            UpdateExpression="SET " + ", ".join([*sets, self._meta_sets(key)]),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    # --- the key's attributes on every item ------------------------------------------------

    def _listed(self, key: CounterKey) -> bool:
        return self.listed and key.granularity == LISTED_GRANULARITY

    def _meta_values(self, key: CounterKey) -> dict[str, Any]:
        return {
            ":d": {"S": key.dimension},
            ":v": {"S": key.value},
            ":g": {"S": key.granularity},
            ":p": {"S": key.period},
        }

    def _meta_sets(self, key: CounterKey) -> str:
        listed = ", listed_dimension = :d" if self._listed(key) else ""
        return "#d = :d, #v = :v, granularity = :g, period = :p" + listed


def _meta_names() -> dict[str, str]:
    return {"#d": "dimension", "#v": "value"}  # both are reserved words


def _key(key: CounterKey) -> dict[str, Any]:
    return {"pk": {"S": key.pk}, "sk": {"S": key.sk}}
