"""Counter items in AggregatesTable, the one writer of the exactly-once protocol.

NPS aggregates (store/aggregates.py) and outcome counters (store/outcomes.py) are the same
kind of item: pk/sk, the key's ``dimension``/``value``/``granularity``/``period``, one number
attribute per counter and one high-water mark per stream shard, ``hwm#<shard id>`` = the padded
sequence number of the last record of that shard applied to it, and ``hwm#<shard id>#at`` =
when a writer last set it (epoch seconds, the writer's clock), so that marks no record can need
any more are collected (docs/aggregation.md "Marks of old shards"). Both are
written with ``add`` (ADD the amounts and SET the lane's mark in one conditional update), read
with ``series`` and repaired by reconcile with ``replace``; only the counters' types differ.

A key is kept in up to COUNTER_SHARDS items, sort key ``<granularity>#<period>#<n>``: each
stream shard writes the item its id hashes to, always the same one (so its mark is there), and
a read sums a key's items in the same Query. That divides the writes per item per second and
the marks per item by up to COUNTER_SHARDS (docs/cost.md "Hot keys"); at low traffic few
stream shards exist, so a key has few items.
"""

import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from nps_sync.core.aggregates import MarkConflict
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.core.periods import rollup, stored, stored_bounds
from nps_sync.store import dynamo

MARK_PREFIX = "hwm#"
MARK_TIME_SUFFIX = "#at"  # hwm#<shard>#at: when the mark was last set
# A mark not set for this long belongs to a shard none of whose records up to the mark can be
# delivered again: stream records live 24 h; the 2 h margin covers an invocation still holding
# a record (Timeout 60 s), clocks, and trimming that lags the 24 h (docs/aggregation.md).
MARK_HORIZON_SECONDS = 26 * 3600
# Monthly NPS items also carry ``listed_dimension`` = their dimension: the sparse index
# ``dimension_values`` (keys only: a counter update writes no index copy) lists a dimension's
# values from it (GET /segments, docs/dashboard.md).
LISTED_GRANULARITY = "month"
META = {"pk", "sk", "dimension", "value", "granularity", "period", "listed_dimension"}
# Items a key is spread over (one per stream shard at most). Changing it moves new writes to
# other items; reads sum whatever items a key has, so any value stays correct.
COUNTER_SHARDS = 8
LAST = "\U0010ffff"  # sorts after every label and shard suffix

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


def shard_of(lane: str) -> int:
    """The counter item a stream shard writes: stable across processes (crc32, not hash())."""
    return zlib.crc32(lane.encode()) % COUNTER_SHARDS


def split_sk(sk: str) -> tuple[str, str, int | None]:
    """``<granularity>#<period>#<n>`` -> its parts (n None on an item written before keys
    were sharded)."""
    granularity, _, rest = sk.partition("#")
    period, _, shard = rest.partition("#")
    return granularity, period, int(shard) if shard else None


def repaired_item(items: Mapping[int | None, Any]) -> tuple[int | None, Any]:
    """Of a key's items by counter shard, the one reconcile repairs the key's sum on (the
    unsharded one first, then the lowest shard), and what it holds; (0, None) for a key that
    has no item."""
    if not items:
        return 0, None
    shard = min(items, key=lambda n: -1 if n is None else n)
    return shard, items[shard]


def mark_of(item: Mapping[str, Any] | None, lane: str) -> str | None:
    return (item or {}).get(MARK_PREFIX + lane, {}).get("S")


def marks_of(item: Mapping[str, Any] | None) -> dict[str, float | None]:
    """lane -> when its mark was last set (None: a mark written before marks had a time)."""
    item = item or {}
    return {
        name.removeprefix(MARK_PREFIX): (
            float(item[name + MARK_TIME_SUFFIX]["N"]) if name + MARK_TIME_SUFFIX in item else None
        )
        for name in item
        if name.startswith(MARK_PREFIX) and not name.endswith(MARK_TIME_SUFFIX)
    }


class Counters:
    """One table's counter items of one kind: ``parse`` reads an item's counters (Counts,
    tallies), ``dump`` turns the counters a write adds into attributes, ``returns`` makes
    ``add`` answer the counters after it, ``listed`` adds ``listed_dimension`` to all-time
    items."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        parse: Callable[[Item], Any],
        dump: Callable[[Any], Mapping[str, int]] = dict,
        *,
        plus: Callable[[Any, Any], Any],
        returns: bool = False,
        listed: bool = False,
    ):
        self.client = client
        self.table_name = table_name
        self.parse = parse
        self.dump = dump
        self.plus = plus  # sums two parsed items (a key's shards, the days of a week)
        self.returns = returns
        self.listed = listed
        self.writes = 0  # UpdateItem calls made by add, for the cost tests
        self.collections = 0  # UpdateItem calls that removed (or timed) old marks
        self._tally = threading.Lock()  # a batch's keys are written from several threads

    def add(
        self,
        key: CounterKey,
        lane: str,
        counts: Any,
        mark: str,
        *,
        below: str | None = None,
        expected: str | None = None,
        forget: tuple[str, ...] = (),
        now: float | None = None,
    ) -> Any:
        """ADD ``counts`` and SET this lane's mark with its time ``now`` (epoch seconds), in
        one conditional update, on the key's item of this lane (``shard_of``); with ``returns``,
        that item's counters after it (every one, also those the write left unchanged). Marks
        of other lanes older than MARK_HORIZON_SECONDS that it finds on the item are then
        removed (``collect``).

        Condition: the stored mark is below ``below`` (or absent), or equals ``expected``.
        A failed condition raises MarkConflict with the stored mark and counters.
        """
        now = time.time() if now is None else now
        shard = shard_of(lane)
        names = {"#m": MARK_PREFIX + lane, "#mt": MARK_PREFIX + lane + MARK_TIME_SUFFIX}
        names.update(_meta_names())
        values: dict[str, Any] = {":mark": {"S": mark}, ":now": {"N": str(int(now))}}
        values.update(self._meta_values(key))
        adds = []
        for i, (name, amount) in enumerate(self.dump(counts).items()):
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
        expression = "SET #m = :mark, #mt = :now, " + self._meta_sets(key)
        if adds:
            expression += " ADD " + ", ".join(adds)
        forgotten = [MARK_PREFIX + s + end for s in forget for end in ("", MARK_TIME_SUFFIX)]
        names.update({f"#f{i}": name for i, name in enumerate(forgotten)})
        if forgotten:
            expression += " REMOVE " + ", ".join(f"#f{i}" for i in range(len(forgotten)))
        with self._tally:
            self.writes += 1
        try:
            answer = dynamo.call(
                self.client,
                "update_item",
                passing=("ConditionalCheckFailedException",),
                TableName=self.table_name,
                Key=_key(key, shard),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ReturnValues="ALL_NEW",  # the item's other marks, for collect
            )
        except ClientError as error:
            item = error.response.get("Item")
            if item is None:  # an SDK without the old item on a failed condition
                item = self.get(key, shard)
            raise MarkConflict(mark_of(item, lane), self.parse(item or {})) from error
        attributes = answer.get("Attributes") or {}
        self.collect(key, attributes, now, shard)
        return self.parse(attributes) if self.returns else None

    def collect(
        self, key: CounterKey, item: Mapping[str, Any], now: float, shard: int | None
    ) -> bool:
        """Remove the marks of ``item`` not set for MARK_HORIZON_SECONDS, each conditional on
        its time being the one read (a lane that wrote meanwhile keeps its mark), and give a
        mark without a time (written before marks had one) the time ``now``: it was set no
        later, so it is collected no earlier than it may be. Best effort: a failure leaves the
        marks for a later write to collect. True when it wrote."""
        old, untimed = [], []
        for lane, at in marks_of(item).items():
            if at is None:
                untimed.append(lane)
            elif at < now - MARK_HORIZON_SECONDS:
                old.append(lane)
        if not old and not untimed:
            return False
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        removes, sets, checks = [], [], []
        for i, lane in enumerate(old):
            mark, at = MARK_PREFIX + lane, MARK_PREFIX + lane + MARK_TIME_SUFFIX
            names[f"#o{i}"], names[f"#ot{i}"] = mark, at
            values[f":ot{i}"] = {"N": item[at]["N"]}
            removes += [f"#o{i}", f"#ot{i}"]
            checks.append(f"#ot{i} = :ot{i}")
        for i, lane in enumerate(untimed):
            names[f"#u{i}"] = MARK_PREFIX + lane
            names[f"#ut{i}"] = MARK_PREFIX + lane + MARK_TIME_SUFFIX
            values[":now"] = {"N": str(int(now))}
            sets.append(f"#ut{i} = :now")
            checks.append(f"attribute_exists(#u{i}) AND attribute_not_exists(#ut{i})")
        expression = ("SET " + ", ".join(sets) + " " if sets else "") + (
            "REMOVE " + ", ".join(removes) if removes else ""
        )
        with self._tally:
            self.collections += 1
        try:
            dynamo.call(
                self.client,
                "update_item",
                passing=("ConditionalCheckFailedException",),
                TableName=self.table_name,
                Key=_key(key, shard),
                UpdateExpression=expression.strip(),
                ConditionExpression=" AND ".join(checks),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, StorageUnavailable):
            logger.info("old marks left for a later write", extra={"key": f"{key.pk}/{key.sk}"})
            return False
        return True

    def get(self, key: CounterKey, shard: int | None) -> Item | None:
        return dynamo.call(
            self.client,
            "get_item",
            TableName=self.table_name,
            Key=_key(key, shard),
            ConsistentRead=True,
        ).get("Item")

    def series(
        self,
        pk: str,
        granularity: str,
        first: str | None,
        last: str | None,
        consistent: bool = False,
    ) -> dict[str, Any]:
        """period -> counters of one pk for a granularity, periods first..last or all: one
        Query of the stored items it is made of (periods.stored: days for weeks, months for
        quarters, years and all time), every shard of each, summed."""
        base = stored(granularity)
        low = stored_bounds(granularity, first, first)[0] if first is not None else ""
        high = stored_bounds(granularity, last, last)[1] if last is not None else LAST
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":low": {"S": f"{base}#{low}"},
                ":high": {"S": f"{base}#{high}#{LAST}"},
            },
            "ConsistentRead": consistent,
        }
        found: dict[str, Any] = {}
        for item in dynamo.pages(self.client, "query", request):
            period = rollup(granularity, split_sk(item["sk"]["S"])[1])
            counts = self.parse(item)
            found[period] = self.plus(found[period], counts) if period in found else counts
        return found

    def replace(
        self,
        key: CounterKey,
        shard: int | None,
        stored: Mapping[str, int] | None,
        expected: Mapping[str, int],
    ) -> bool:
        """Set the counters of the key's item ``shard`` to ``expected`` if they still are
        ``stored`` (absent = 0, and ``stored`` None = the item does not exist); marks stay as
        they are."""
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
            Key=_key(key, shard),
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


def _key(key: CounterKey, shard: int | None) -> dict[str, Any]:
    sk = key.sk if shard is None else f"{key.sk}#{shard}"
    return {"pk": {"S": key.pk}, "sk": {"S": sk}}
