"""The stream side: one batch of RecordsTable changes -> aggregate writes and segment stamps.

A batch is folded in memory, then each aggregate key is written once with the batch's deltas
and this shard's mark (aggregates.apply_key). Failures are reported from the first record whose
work failed: Lambda checkpoints at the lowest reported failure and delivers everything after it
again, and the marks make the already applied part of that redelivery a no-op.
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nps_sync.aggregation.keys import write_keys
from nps_sync.aggregation.outcome_step import OutcomeStep
from nps_sync.aggregation.stream import Change, Lane, LaneUnknown, ShardLocator, changes
from nps_sync.core.aggregates import (
    ZERO,
    AggregateKey,
    Applied,
    Counts,
    Entry,
    Pending,
    apply_key,
    fold,
    total,
)
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.models import StoredProfile, StoredResponse
from nps_sync.core.observability import logger
from nps_sync.core.periods import ALL, rollup, stored, stored_bounds
from nps_sync.core.retry import retried
from nps_sync.delivery.events import (
    AGGREGATE_UPDATED,
    Event,
    aggregate_event,
    customer_change,
    is_new_version,
    response_events,
)
from nps_sync.delivery.fanout import Fanout
from nps_sync.delivery.outbound import PublishFailed
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import SEGMENT_ATTRIBUTES, VERSION, CustomerRecords
from nps_sync.store.items import stored_profile, stored_response
from nps_sync.store.outcomes import OutcomesStore

# (stream ARN, the batch's records) -> their shard; raises LaneUnknown when it cannot tell now.
Locator = Callable[[str, list[Mapping[str, Any]]], Lane]
# A key a batch wrote, and the entries that write applied (the rest an earlier one had).
Touched = tuple[Pending, list[Entry]]


@dataclass
class BatchResult:
    records: int = 0
    keys: int = 0
    writes: int = 0
    stamps: int = 0
    events: int = 0
    failed_from: int | None = None  # index of the first record to deliver again

    def fail(self, index: int) -> None:
        self.failed_from = index if self.failed_from is None else min(self.failed_from, index)


def _profile_changed(change: Change) -> bool:
    new = change.new_profile
    if new is None:
        return False
    old = change.old_profile
    return any(getattr(old, n, None) != getattr(new, n) for n in (*SEGMENT_ATTRIBUTES, VERSION))


def _answer(event: Mapping[str, Any], failed: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The partial batch response; under a tumbling window (the event has one) also the
    window's ``state``, without which Lambda counts the invocation failed. It stays empty:
    the counters' marks are the aggregator's state (docs/aggregation.md)."""
    answer: dict[str, Any] = {
        "batchItemFailures": [
            {"itemIdentifier": str(r["dynamodb"]["SequenceNumber"])} for r in failed
        ]
    }
    if "window" in event:
        answer["state"] = {}
    return answer


class Aggregator:
    def __init__(
        self,
        aggregates: AggregatesStore,
        records: CustomerRecords,
        dimensions: Iterable[str],
        locator: Locator | None = None,
        fanout: Fanout | None = None,
        event_granularities: Iterable[str] = ("all", "month"),
        clock: Callable[[], float] = time.time,
    ):
        self.aggregates = aggregates
        self.records = records
        self.dimensions = tuple(dimensions)
        self.locator = locator or ShardLocator()
        self.fanout = fanout  # None: derive no outgoing events
        self.event_granularities = frozenset(event_granularities)
        self.clock = clock  # the marks' times (store/counters.py) and the outcome versions
        self.last: BatchResult | None = None  # the last batch's counts, for metrics and tests
        # Revenue outcomes by NPS category (docs/outcomes.md), in the same AggregatesTable.
        self.outcomes = OutcomeStep(
            OutcomesStore(aggregates.table_name, aggregates.client), records, self.dimensions
        )

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A Lambda stream event -> the partial batch response."""
        records = event.get("Records") or []
        if not records:  # (a tumbling window's final invocation may have none)
            return _answer(event, [])
        try:
            # A mapping with a tumbling window names the shard in the event: no lookup at all.
            shard = event.get("shardId")
            arn = records[0].get("eventSourceARN", "")
            lane = Lane(shard) if shard else self.locator(arn, records)
        except LaneUnknown as error:
            # The stream could not tell the shard just now (throttled, say): nothing is
            # applied and the whole batch is reported, so Lambda delivers it again.
            logger.warning("batch shard unknown; delivered again", extra={"reason": str(error)})
            self.last = BatchResult(records=len(records), failed_from=0)
            return _answer(event, records)
        result = self.run(records, lane)
        failed = [] if result.failed_from is None else records[result.failed_from :]
        logger.info(
            "batch aggregated",
            extra={
                "records": result.records,
                "keys": result.keys,
                "writes": result.writes,
                "stamps": result.stamps,
                "events": result.events,
                "failed": len(failed),
                "shard": lane.shard_id,
            },
        )
        self.last = result
        return _answer(event, failed)

    def run(self, records: list[Mapping[str, Any]], lane: Lane) -> BatchResult:
        now = self.clock()
        batch = changes(records)
        result = BatchResult(records=len(batch))
        pending = fold(
            ((c.index, c.sequence, c.old_response, c.new_response) for c in batch), self.dimensions
        )
        result.keys = len(pending)
        created = [_created(record) for record in records]
        # aggregate.updated costs a Query per period moved: derived only where it can go
        derive = self.fanout is not None and self.fanout.wants(AGGREGATE_UPDATED)
        touched_by: dict[AggregateKey, list[Touched]] = {key: [] for key in pending}

        def write(key: Pending) -> int:
            return self._apply(key, lane, touched_by[key.key] if derive else None, now)

        write_keys(list(pending.values()), write, result, "aggregate")
        touched = [entry for entries in touched_by.values() for entry in entries]  # key order
        events = self._aggregate_events(touched, lane.shard_id, created, result)
        responses = BatchResponses(self.records)
        self._stamp(batch, result, responses)
        self.outcomes.run(batch, lane, result, responses, now=now)
        if self.fanout is not None:
            self._publish(batch, created, events, result, responses)
        return result

    def _apply(
        self, pending: Pending, lane: Lane, touched: list[Touched] | None, now: float
    ) -> int:
        """apply_key, tried again before the key is reported (core/retry.py): the marks make a
        write repeated after a lost answer a no-op."""
        applied = self._on_applied(pending, touched)
        return retried(
            apply_key, self.aggregates, pending, lane.shard_id, lane.ancestors, applied, now=now
        )

    # --- outgoing events (docs/events.md) -------------------------------------------------

    def _on_applied(self, pending: Pending, touched: list[Touched] | None) -> Applied | None:
        """Note each key whose write applied entries, with the entries it applied now (those
        before them were found applied by an earlier write of this shard: a batch delivered
        again, whose events are derived again)."""
        if touched is None or not any(
            stored(g) == pending.key.granularity for g in self.event_granularities
        ):
            return None

        def applied(entries: list[Entry], after: Counts) -> None:
            touched.append((pending, entries))

        return applied

    def _aggregate_events(
        self,
        touched: list[Touched],
        lane: str,
        created: list[float | None],
        result: BatchResult,
    ) -> list[Event]:
        """aggregate.updated for each period of an event granularity that the batch moved.
        Its counters after the batch are read: one consistent Query of a segment's stored
        items (every counter shard: another stream shard's writes count too) serves all its
        periods (with ``all,month``: the month is among the months all time sums). The entries
        an earlier write of this shard had applied make an event of their own, as that write
        derived it (same id, from its last record; after = what the read shows less this
        batch's new part), and the new entries one on top."""
        moved: dict[AggregateKey, tuple[list[Entry], list[Entry]]] = {}
        for pending, entries in touched:
            key = pending.key
            earlier = pending.entries[: len(pending.entries) - len(entries)]
            for granularity in self.event_granularities:
                if stored(granularity) == key.granularity:
                    period = rollup(granularity, key.period)
                    target = AggregateKey(key.dimension, key.value, granularity, period)
                    parts = moved.setdefault(target, ([], []))
                    parts[0].extend(earlier)
                    parts[1].extend(entries)
        segments: dict[tuple[str, str, str], list[AggregateKey]] = {}
        for target in sorted(moved):
            base = stored(target.granularity)
            segments.setdefault((target.dimension, target.value, base), []).append(target)
        events = []
        for (dimension, value, base), targets in segments.items():
            try:
                read = retried(self._after, dimension, value, base, targets)
            except StorageUnavailable:  # derived again when the records are delivered again
                result.fail(min(e.index for t in targets for part in moved[t] for e in part))
                continue
            for target in targets:
                after = sum(
                    (
                        c
                        for label, c in read.items()
                        if rollup(target.granularity, label) == target.period
                    ),
                    ZERO,
                )
                earlier, new = moved[target]
                for part, counts in ((earlier, after - total(new)), (new, after)):
                    if not part:
                        continue
                    part.sort(key=lambda e: e.sequence)
                    last = part[-1]
                    event = aggregate_event(
                        target,
                        counts - total(part),
                        counts,
                        lane,
                        last.sequence,
                        min(e.index for e in part),
                        created[last.index],
                    )
                    if event is not None:
                        events.append(event)
        return events

    def _after(
        self, dimension: str, value: str, base: str, targets: list[AggregateKey]
    ) -> dict[str, Counts]:
        """Stored label -> counters of one segment's items that ``targets`` are made of."""
        if any(t.granularity == ALL for t in targets):
            first = last = None
        else:
            spans = [stored_bounds(t.granularity, t.period, t.period) for t in targets]
            first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        return self.aggregates.series(dimension, value, base, first, last, consistent=True)

    def _publish(
        self,
        batch: list[Change],
        created: list[float | None],
        events: list[Event],
        result: BatchResult,
        responses: "BatchResponses",
    ) -> None:
        """Derive the batch's record events and hand them, with the aggregate events, over."""
        fresh = [c for c in batch if is_new_version(c.old_response, c.new_response)]
        latest: dict[str, list[StoredResponse] | None] = {}
        for change in fresh:
            new = change.new_response
            assert new is not None
            customer = new.customer_key
            if customer is not None and customer not in latest:
                try:
                    latest[customer] = responses(customer)
                except StorageUnavailable:
                    latest[customer] = None
            events.extend(
                response_events(change.index, change.old_response, new, created[change.index])
            )
            others = latest.get(customer) if customer is not None else []
            if others is None:
                result.fail(change.index)  # its customer event is derived on redelivery
                continue
            change_event = customer_change(
                change.index, change.old_response, new, others, created[change.index]
            )
            if change_event is not None:
                events.append(change_event)
        events.sort(key=lambda e: e.index)
        result.events = len(events)
        try:
            self.fanout.publish(events)
        except PublishFailed as failure:
            logger.warning("publishing events failed", extra={"events": len(failure.events)})
            result.fail(min((e.index for e in failure.events), default=0))

    def _stamp(self, batch: list[Change], result: BatchResult, responses: "BatchResponses") -> None:
        """Keep responses' segment attributes equal to their customer's current profile."""
        for change in batch:
            if _profile_changed(change):
                profile = change.new_profile
                assert profile is not None
                try:
                    for response in responses(profile.customer_key):
                        if response.stamp_behind(profile):
                            result.stamps += self._stamp_one(response, profile)
                except StorageUnavailable:
                    result.fail(change.index)
        fresh = [
            (c.index, c.new_response)
            for c in batch
            if c.new_response is not None and c.new_response.customer_key is not None
        ]
        if not fresh:
            return
        try:
            customers = [response.customer_key for _, response in fresh]
            found = retried(self.records.profiles, customers)
        except StorageUnavailable:
            result.fail(fresh[0][0])
            return
        profiles = {key: stored_profile(item) for key, item in found.items()}
        for index, response in fresh:
            profile = profiles.get(response.customer_key)
            if profile is not None and response.stamp_behind(profile):
                try:
                    result.stamps += self._stamp_one(response, profile)
                except StorageUnavailable:
                    result.fail(index)

    def _stamp_one(self, response: StoredResponse, profile: StoredProfile) -> int:
        """A stamp is conditional on the response as read: repeated, it changes nothing."""
        return retried(self.records.stamp, response.item, profile.item)


class BatchResponses:
    """Each customer's responses, read once per batch: the stamps, the outcome state and the
    customer events all need them, and every Query is a round trip and read units. The
    attributes they read (score, times, customer) are not what stamps change."""

    def __init__(self, records: CustomerRecords):
        self.records = records
        self.found: dict[str, list[StoredResponse]] = {}

    def __call__(self, customer: str) -> list[StoredResponse]:
        if customer not in self.found:
            items = retried(self.records.by_customer, customer, "RESP#")
            self.found[customer] = [r for r in map(stored_response, items) if r is not None]
        return self.found[customer]


def _created(record: Mapping[str, Any]) -> float | None:
    """The stream record's creation time (epoch seconds in Lambda's event)."""
    value = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
