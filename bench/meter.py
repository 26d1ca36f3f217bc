"""Count AWS calls exactly at the botocore layer, and DynamoDB capacity units as DynamoDB bills.

Attach a ``Meter`` to a botocore event emitter (a client's ``meta.events`` or a session's): every
call is counted by service and operation; DynamoDB writes are priced from the item sizes before
and after the write (``peek`` reads them without being counted), reads from the items returned.

Rules (DynamoDB developer guide, "Capacity unit consumption" and "Item sizes"):
- a write costs 1 WCU per started KB of the larger of the old and the new item, minimum 1;
  transactional writes cost twice that; a failed condition still costs the old item's size;
- each global secondary index an item enters, leaves or changes in costs 1 WCU per KB of the
  index entry (2 writes when the index key changes); writes that miss the index cost nothing;
- a read costs 1 RCU per started 4 KB (per item for GetItem/BatchGetItem, per response for
  Query/Scan), half that when eventually consistent, minimum 0.5.

Calls may come from several threads (``nps_sync.store.dynamo.each``): the counts are kept under
a lock, ``seconds_in_calls`` is the time at least one call was in flight, and
``round_trips`` counts the calls as waits: one each, except that the calls of one ``each``
(``nps_sync.store.dynamo.section`` tells which) wait ⌈n / its workers⌉ times, as they overlap.
"""

import base64
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

Item = Mapping[str, Mapping[str, Any]]
Peek = Callable[[str, Item], Item | None]  # (table, key) -> the stored item or None

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return number_size(content)
    if kind == "B":
        return len(_bytes(content))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in content)
    if kind == "NS":
        return sum(number_size(n) for n in content)
    if kind == "BS":
        return sum(len(_bytes(b)) for b in content)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in content)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in content.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def number_size(text: str) -> int:
    """1 byte per two significant digits, plus 1 (leading and trailing zeros do not count)."""
    digits = Decimal(str(text)).normalize().as_tuple().digits
    significant = str(int("".join(map(str, digits)) or "0")).rstrip("0") or "0"
    return math.ceil(len(significant) / 2) + 1


def _bytes(content: Any) -> bytes:
    if isinstance(content, bytes | bytearray):
        return bytes(content)
    return base64.b64decode(content)


def item_size(item: Item | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units if consistent else units / 2)


def _service(model: Any) -> str:
    """The service of a call, also of a client of a cut model (nps_sync.store.aws), if loaded."""
    aws = sys.modules.get("nps_sync.store.aws")
    return aws.service_of(model.service_model) if aws else model.service_model.service_name


class Meter:
    """Counts calls (``calls[(service, operation)]``) and DynamoDB units per table and kind."""

    def __init__(
        self,
        peek: Peek | None = None,
        indexes: Mapping[str, list[Any]] | None = None,
        kind: Callable[[str, Item], str] | None = None,
    ):
        self.peek = peek
        # table -> each GSI's key attribute names, or (them, its projected attribute names):
        # an index without the second projects ALL
        self.indexes = dict(indexes or {})
        self.kind = kind or (lambda table, key: table)
        self.phase = "all"
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (phase, service, operation)
        self.wcu: Counter[tuple[str, str]] = Counter()  # (phase, kind)
        self.gsi_wcu: Counter[tuple[str, str]] = Counter()
        self.rcu: Counter[tuple[str, str]] = Counter()
        self.items_written: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.in_flight_since = 0.0
        self.sections: Counter[tuple[str, int]] = Counter()  # (phase, each call) -> calls
        self.entries: Counter[tuple[str, str, str]] = Counter()  # events/messages sent
        self.seconds_in_calls = 0.0

    def attach(self, events: Any) -> "Meter":
        events.register("provide-client-params", self._before)
        events.register("after-call", self._after)
        return self

    # --- hooks -----------------------------------------------------------------------------

    def _before(self, params, model, context, **_):
        service = _service(model)
        context["meter"] = {"t": time.perf_counter(), "params": params, "old": None}
        with self.lock:
            if self.in_flight == 0:
                self.in_flight_since = context["meter"]["t"]
            self.in_flight += 1
        if service == "dynamodb" and model.name in WRITES and self.peek is not None:
            context["meter"]["old"] = [
                self.peek(table, key) for table, key, _ in _targets(model.name, params)
            ]

    def _after(self, parsed, model, context, **_):
        state = context.get("meter")
        if state is None:
            return
        with self.lock:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.seconds_in_calls += time.perf_counter() - self.in_flight_since
            self._count(parsed, model, state)

    def _count(self, parsed, model, state) -> None:
        dynamo = sys.modules.get("nps_sync.store.dynamo")  # the functions' calls, if loaded
        section = dynamo.section() if dynamo is not None else None
        if section is not None:
            self.sections[(self.phase, section)] += 1
        service = _service(model)
        self.calls[(self.phase, service, model.name)] += 1
        params = state["params"]
        if "Entries" in params:  # PutEvents, SendMessageBatch: billed per entry
            self.entries[(self.phase, service, model.name)] += len(params["Entries"])
        if service != "dynamodb":
            return
        failed = "Error" in parsed
        if model.name in WRITES:
            self._writes(model.name, params, state["old"] or [], failed)
        else:
            self._reads(model.name, params, parsed)

    # --- pricing ---------------------------------------------------------------------------

    def _writes(self, operation: str, params: dict, olds: list, failed: bool) -> None:
        factor = 2 if operation == "TransactWriteItems" else 1
        for (table, key, new), old in zip(
            _targets(operation, params), olds or [None] * 999, strict=False
        ):
            kind = self.kind(table, key)
            if new == "update":
                new = None if failed or self.peek is None else self.peek(table, key)
            elif new == "delete":
                new = None
            if failed:
                self.wcu[(self.phase, kind)] += factor * write_units(item_size(old))
                continue
            size = max(item_size(old), item_size(new))
            self.wcu[(self.phase, kind)] += factor * write_units(size)
            self.items_written[(self.phase, kind)] += 1
            for index in self.indexes.get(table, []):
                attributes, projected = index if isinstance(index[0], tuple) else (index, None)
                self.gsi_wcu[(self.phase, kind)] += _index_units(attributes, old, new, projected)

    def _reads(self, operation: str, params: dict, parsed: dict) -> None:
        if operation == "GetItem":
            table = params["TableName"]
            kind = self.kind(table, params["Key"])
            size = item_size(parsed.get("Item"))
            self.rcu[(self.phase, kind)] += read_units(size, bool(params.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            table = params["TableName"]
            items = parsed.get("Items", [])
            kind = self.kind(table, items[0]) if items else table
            size = sum(item_size(i) for i in items)
            self.rcu[(self.phase, kind)] += read_units(size, bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for table, request in params.get("RequestItems", {}).items():
                consistent = bool(request.get("ConsistentRead"))
                for item in parsed.get("Responses", {}).get(table, []):
                    kind = self.kind(table, item)
                    self.rcu[(self.phase, kind)] += read_units(item_size(item), consistent)
                found = len(parsed.get("Responses", {}).get(table, []))
                missing = len(request.get("Keys", [])) - found
                self.rcu[(self.phase, table)] += missing * read_units(0, consistent)

    # --- report ----------------------------------------------------------------------------

    def round_trips(self, phase: str, workers: int) -> float:
        """The phase's calls as waits: the calls of one pool of ``workers`` overlap."""
        calls = sum(n for (p, _, _), n in self.calls.items() if p == phase)
        pooled = {pool: n for (p, pool), n in self.sections.items() if p == phase}
        return calls - sum(pooled.values()) + sum(math.ceil(n / workers) for n in pooled.values())

    def total_calls(self, phase: str | None = None, service: str | None = None) -> int:
        return sum(
            n
            for (p, s, _), n in self.calls.items()
            if (phase is None or p == phase) and (service is None or s == service)
        )


def _index_units(
    attributes: tuple[str, ...],
    old: Item | None,
    new: Item | None,
    projected: tuple[str, ...] | None = None,
) -> int:
    """Index write units of one base-table write, billed by the index entry's size: the whole
    item with an ALL projection (``projected`` None), else only the keys and projected
    attributes, so an update of an attribute the index does not hold writes nothing there."""

    def entry(item):
        if not item or not all(a in item for a in attributes):
            return None
        if projected is None:
            return item
        return {name: value for name, value in item.items() if name in projected}

    before, after = entry(old), entry(new)
    if before is None and after is None:
        return 0
    if before is None:
        return write_units(item_size(after))
    if after is None:
        return write_units(item_size(before))
    if all(before[a] == after[a] for a in attributes):
        return 0 if before == after else write_units(max(item_size(before), item_size(after)))
    return write_units(item_size(before)) + write_units(item_size(after))


def _targets(operation: str, params: dict) -> list[tuple[str, Item, Any]]:
    """(table, key, new item | "update" | "delete") of every item a write touches."""
    if operation == "PutItem":
        return [(params["TableName"], params["Item"], params["Item"])]
    if operation == "UpdateItem":
        return [(params["TableName"], params["Key"], "update")]
    if operation == "DeleteItem":
        return [(params["TableName"], params["Key"], "delete")]
    targets = []
    if operation == "BatchWriteItem":
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    targets.append((table, item, item))
                else:
                    targets.append((table, request["DeleteRequest"]["Key"], "delete"))
        return targets
    for action in params.get("TransactItems", []):
        ((name, body),) = action.items()
        if name == "Put":
            targets.append((body["TableName"], body["Item"], body["Item"]))
        elif name == "Update":
            targets.append((body["TableName"], body["Key"], "update"))
        elif name == "Delete":
            targets.append((body["TableName"], body["Key"], "delete"))
        else:  # ConditionCheck: billed as a write of the item, which does not change
            targets.append((body["TableName"], body["Key"], "update"))
    return targets
