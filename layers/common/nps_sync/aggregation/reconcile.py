"""Recompute every aggregate from the response items and compare with the stored ones.

The offline oracle of the aggregator (tests use it too): one Scan of RecordsTable's
by_customer index (responses, provider profiles and identity links; no raw payload is in it)
as parallel segments, folded as its pages arrive, with each customer's PROFILE read by key
(BatchGetItem) the first time one of its items passes; the same ``contribution`` the
aggregator uses, and a Scan of AggregatesTable (docs/aggregation.md "What it reads"). No raw
payload item is ever read. Four kinds of difference (docs/aggregation.md "Reconcile"):

- aggregates: stored counters that are not the recomputed ones;
- stale stamps: responses whose stamped segment attributes are not their customer's current
  PROFILE's (the aggregates are computed from the stamps, so a missed stamp hides there);
- revenue outcomes: state, counters, at-risk index (nps_sync.aggregation.outcome_reconcile);
- identity orphans: records still stored under an alias that a link points to another customer
  key (written just before the link, missed by its move under index lag).

``--fix`` repairs only what two passes ``--settle`` seconds apart both found, identically:
a record still on its way through the stream makes a difference that vanishes or moves
between the passes and is left alone. Aggregates are set conditional on their counters not
having moved since the second scan (the stream marks stay); stale responses are re-stamped
(the stamp flows through the stream and moves the counts); orphans are moved to the
customer the link names (store/links.py ``rekey``, which merges the alias's PROFILE too).

Run by ReconcileFunction on a schedule and by ``make reconcile`` (nps_sync.cli.reconcile).
Output names customers only by their customer_ref, never by key.
"""

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from nps_sync.aggregation.outcome_reconcile import (
    ANSWER_READS,
    Answers,
    OutcomeReport,
    check_outcomes,
    repair_outcomes,
)
from nps_sync.core.aggregates import ZERO, AggregateKey, Counts, contribution
from nps_sync.core.models import RESPONSE_ATTRIBUTES, StoredProfile, StoredResponse
from nps_sync.core.observability import customer_ref
from nps_sync.core.outcomes import PK_PREFIX as OUTCOME_PREFIX
from nps_sync.core.outcomes import to_attribute
from nps_sync.store import dynamo
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.counters import repaired_item
from nps_sync.store.customers import (
    INDEX,
    SEGMENT_ATTRIBUTES,
    VERSION,
    CustomerRecords,
    customer_pk,
)
from nps_sync.store.items import stored_profile, stored_response, text
from nps_sync.store.links import Links
from nps_sync.store.outcomes import OutcomesStore

DEFAULT_SETTLE_SECONDS = 10.0  # > the stream's usual lag (batching window + one invocation)
STAMP = (*SEGMENT_ATTRIBUTES, VERSION)
INDEXED = ("gsi1pk", "gsi1sk", "customer_key", "settled")  # whose, what kind, a link's target
BLOCK = 2000  # index items held while the PROFILEs of their new customers are read
BATCH_KEYS = 100  # PROFILEs per BatchGetItem (its limit)
PROFILE_READERS = 4  # BatchGetItem calls in flight
LINK_HOPS = 3  # as Links.resolve follows them


@dataclass(frozen=True)
class Difference:
    """A key whose counters (summed over its items) are not the expected ones; repaired on
    one of its items, ``shard`` (holding ``item``), by what the sum is off by."""

    key: AggregateKey
    stored: Counts | None
    expected: Counts
    shard: int | None = 0
    item: Counts | None = None

    @property
    def repaired(self) -> Counts:
        """What the repaired item holds: its counters moved by expected - stored."""
        return (self.item or ZERO) + self.expected - (self.stored or ZERO)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "stored": self.stored.as_dict() if self.stored is not None else None,
            "expected": self.expected.as_dict(),
        }


@dataclass(frozen=True)
class StaleStamp:
    """A response whose stamp is not its customer's current profile (DynamoDB JSON values of
    the segment attributes and profile_version, absent ones left out)."""

    response: str  # the response item's pk
    customer: str
    stamped: dict[str, Any]
    current: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        def shown(values: Mapping[str, Any]) -> dict[str, Any]:
            return {name: next(iter(value.values())) for name, value in sorted(values.items())}

        return {
            "stamp": self.response,
            "customer": customer_ref(self.customer),
            "stamped": shown(self.stamped),
            "current": shown(self.current),
        }


@dataclass(frozen=True)
class Orphan:
    """Records stored under ``alias`` while its link names ``customer``: ``records`` items in
    by_customer (responses, provider profiles, links) and, if ``profile``, a PROFILE."""

    alias: str
    customer: str
    records: int
    profile: bool

    @property
    def count(self) -> int:
        return self.records + int(self.profile)

    def as_dict(self) -> dict[str, Any]:
        return {
            "orphan": customer_ref(self.alias),
            "customer": customer_ref(self.customer),
            "records": self.records,
            "profile": self.profile,
        }


@dataclass
class Report:
    responses: int = 0
    aggregates: int = 0
    differences: list[Difference] = field(default_factory=list)
    fixed: int = 0
    outcomes: OutcomeReport = field(default_factory=OutcomeReport)  # docs/outcomes.md
    stale_stamps: list[StaleStamp] = field(default_factory=list)
    restamped: int = 0
    orphans: list[Orphan] = field(default_factory=list)  # by alias
    moved: int = 0  # --fix: orphaned records moved to their customer (and PROFILEs merged)
    customers: int = 0  # PROFILE items read
    unsettled: int = 0  # --fix: differences of the second pass the first did not see alike

    @property
    def orphaned(self) -> int:
        """Records stored under an alias (the ``IdentityOrphans`` metric)."""
        return sum(orphan.count for orphan in self.orphans)

    @property
    def unresolved(self) -> int:
        return (
            len(self.differences)
            - self.fixed
            + len(self.outcomes.differences)
            - self.outcomes.fixed
            + len(self.stale_stamps)
            - self.restamped
            + max(self.orphaned - self.moved, 0)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "responses": self.responses,
            "aggregates": self.aggregates,
            "differences": len(self.differences),
            "fixed": self.fixed,
            "outcome_profiles": self.outcomes.profiles,
            "outcome_differences": len(self.outcomes.differences),
            "outcomes_fixed": self.outcomes.fixed,
            "stale_stamps": len(self.stale_stamps),
            "restamped": self.restamped,
            "orphans": self.orphaned,
            "orphans_moved": self.moved,
            "customers": self.customers,
            "unsettled": self.unsettled,
        }


class Sums:
    """``contribution`` summed per aggregate key as responses stream by, in plain integer
    lists: a new Counts per addition made this fold ~3x slower."""

    def __init__(self, dimensions: Iterable[str]):
        self.dimensions = tuple(dimensions)
        self._sums: dict[AggregateKey, list[int]] = {}

    def add(self, response: StoredResponse) -> None:
        sums, last, values = self._sums, None, ()
        for key, counts in contribution(response, self.dimensions).items():
            if counts is not last:
                last, values = counts, counts.values()
            total = sums.get(key)
            if total is None:
                sums[key] = list(values)
            else:
                for i, value in enumerate(values):
                    total[i] += value

    def counts(self) -> dict[AggregateKey, Counts]:
        return {key: Counts(*total) for key, total in self._sums.items()}


def differences(
    stored: Mapping[AggregateKey, Counts],
    expected: Mapping[AggregateKey, Counts],
    items: Mapping[AggregateKey, Mapping[int | None, Counts]] | None = None,
) -> list[Difference]:
    """Every key whose stored counters are not the expected ones (absent counts as zero);
    ``items``: each key's items by counter shard (the first is the one repaired)."""
    found = []
    for key in sorted(set(stored) | set(expected)):
        if stored.get(key, ZERO) == expected.get(key, ZERO):
            continue
        shard, item = repaired_item((items or {}).get(key) or {})
        found.append(Difference(key, stored.get(key), expected.get(key, ZERO), shard, item))
    return found


def stored_counters(
    aggregates: AggregatesStore, dimensions: tuple[str, ...]
) -> tuple[
    dict[AggregateKey, Counts], dict[AggregateKey, dict[int | None, Counts]], list[dict[str, Any]]
]:
    """Every key's counters summed over its items, its items by counter shard, and the outcome
    counters' items as stored (check_outcomes): one Scan of AggregatesTable reads both kinds,
    where a second one, filtered, would read (and bill) the whole table again."""
    totals: dict[AggregateKey, Counts] = {}
    items: dict[AggregateKey, dict[int | None, Counts]] = {}
    outcome_items: list[dict[str, Any]] = []
    for item in aggregates.scan_items():
        if item["pk"]["S"].startswith(OUTCOME_PREFIX):
            outcome_items.append(item)
            continue
        counter = aggregates.counter(item)
        if counter is None:
            continue
        key, shard, counts = counter
        if key.dimension in dimensions:
            totals[key] = totals.get(key, ZERO) + counts
            items.setdefault(key, {})[shard] = counts
    return totals, items, outcome_items


def _stamp(record: StoredResponse | StoredProfile) -> dict[str, Any]:
    """Its segment attributes and profile_version as a stamp writes them (absent left out)."""
    values = {name: getattr(record, name) for name in STAMP}
    return {name: to_attribute(value) for name, value in values.items() if value is not None}


def _stale(response: StoredResponse, versioned: Mapping[str, StoredProfile]) -> StaleStamp | None:
    key = response.customer_key
    profile = versioned.get(key) if key is not None else None
    if profile is None or all(
        getattr(response, n) == getattr(profile, n) for n in SEGMENT_ATTRIBUTES
    ):
        return None
    return StaleStamp(response.pk, profile.customer_key, _stamp(response), _stamp(profile))


def response_reads(dimensions: Iterable[str]) -> tuple[str, ...]:
    """The response attributes reconcile reads: the counted dimensions' (contribution), the
    stamp, and what the outcome state takes from an answer (core.outcomes.derive)."""
    counted = (d for d in dimensions if d in RESPONSE_ATTRIBUTES)
    return tuple(dict.fromkeys((*ANSWER_READS, *STAMP, *counted)))


def indexed_items(
    records: CustomerRecords, attributes: Iterable[str], segments: int = dynamo.SEGMENTS
) -> Iterator[dict[str, Any]]:
    """Every item of by_customer (responses, provider profiles, links), projected: one
    parallel Scan of the index, so no raw payload, PROFILE or event item is passed over.
    (A public twin of ``CustomerRecords.responses`` without its RESP# filter belongs in
    store/customers.py; the filter saves no read units, an index item is billed in full.)"""
    return records._scan({"IndexName": INDEX}, (*INDEXED, *attributes), segments)


class Identity:
    """Who is stored under which customer key, and the links, as the index items stream by:
    O(customer keys) counters, no item kept."""

    def __init__(self) -> None:
        self.under: dict[str, int] = {}
        self.links: dict[str, tuple[str, bool]] = {}  # alias -> (customer key, settled)

    def add(self, key: str, item: Mapping[str, Any]) -> None:
        self.under[key] = self.under.get(key, 0) + 1
        sort = text(item, "gsi1sk") or ""
        if sort.startswith("ID#"):
            target = text(item, "customer_key") or key
            self.links[sort.removeprefix("ID#")] = (target, "settled" in item)

    def unsettled(self) -> set[str]:
        """Aliases whose move may not have finished: their PROFILE may still be there."""
        return {alias for alias, (_, settled) in self.links.items() if not settled}

    def resolve(self, key: str) -> str:
        for _ in range(LINK_HOPS):
            target = self.links.get(key, (key, True))[0]
            if target == key:
                break
            key = target
        return key

    def orphans(self, profiles: Mapping[str, StoredProfile]) -> list[Orphan]:
        found = []
        for alias in sorted(self.links):
            customer = self.resolve(alias)
            if customer == alias:
                continue
            records, profile = self.under.get(alias, 0), alias in profiles
            if records or profile:
                found.append(Orphan(alias, customer, records, profile))
        return found


class Profiles:
    """Each customer's PROFILE, read by key (BatchGetItem, ``PROFILE_READERS`` in flight) the
    first time one of its items passes, and kept (O(customers), as the outcome check needs
    them). A customer without one is remembered too, so it is asked for once."""

    def __init__(self, records: CustomerRecords, pool: ThreadPoolExecutor, answers: Answers):
        self.records, self.pool, self.answers = records, pool, answers
        self.found: dict[str, StoredProfile] = {}
        self.versioned: dict[str, StoredProfile] = {}
        self.asked: set[str] = set()

    def read(self, keys: Iterable[str]) -> None:
        new = sorted(set(keys) - self.asked - {""})
        self.asked.update(new)
        chunks = [new[i : i + BATCH_KEYS] for i in range(0, len(new), BATCH_KEYS)]
        for items in self.pool.map(self.records.profiles, chunks):
            for item in items.values():
                profile = stored_profile(item)
                if profile is None:
                    continue
                self.found[profile.customer_key] = profile
                self.answers.offer(profile)
                if profile.profile_version is not None:
                    self.versioned[profile.customer_key] = profile


def survey(
    records: CustomerRecords,
    aggregates: AggregatesStore,
    dimensions: Iterable[str],
    segments: int = dynamo.SEGMENTS,
) -> Report:
    """One pass: every difference, nothing written.

    Streams: the by_customer items in blocks of ``BLOCK`` as the parallel Scan segments deliver
    them; before a block is folded, the PROFILEs of the customers it names for the first time
    are read (kept, O(customers)); then each response is folded at once into the expected
    counters (O(aggregate keys)), checked against its customer's stamp and offered to the
    outcome fold (which keeps only the few answers the outcome state reads per billing
    customer), and every item counted under its customer key (orphans). No list of the
    responses is ever held, and no raw payload item read."""
    dimensions = tuple(dimensions)
    report = Report()
    answers = Answers(())
    expected = Sums(dimensions)
    identity = Identity()
    stale: list[StaleStamp] = []
    with ThreadPoolExecutor(PROFILE_READERS, thread_name_prefix="reconcile-profiles") as pool:
        profiles = Profiles(records, pool, answers)

        def fold(block: list[tuple[str, dict[str, Any]]]) -> None:
            profiles.read(key for key, _ in block)
            for key, item in block:
                identity.add(key, item)
                response = stored_response(item)
                if response is None:
                    continue
                report.responses += 1
                expected.add(response)
                if (found := _stale(response, profiles.versioned)) is not None:
                    stale.append(found)
                answers.add(response)

        block: list[tuple[str, dict[str, Any]]] = []
        for item in indexed_items(records, response_reads(dimensions), segments):
            block.append(((text(item, "gsi1pk") or "").removeprefix("CUST#"), item))
            if len(block) >= BLOCK:
                fold(block)
                block = []
        fold(block)
        # an alias's PROFILE outlives its records' move only until the link is settled
        profiles.read(identity.unsettled())
    report.customers = len(profiles.found)
    report.orphans = identity.orphans(profiles.found)
    stored, items, outcome_items = stored_counters(aggregates, dimensions)
    report.aggregates = len(stored)
    report.differences = differences(stored, expected.counts(), items)
    report.stale_stamps = sorted(stale, key=lambda s: s.response)
    ordered = [profiles.found[key] for key in sorted(profiles.found)]
    report.outcomes = check_outcomes(ordered, answers.kept(), outcome_items, dimensions)
    return report


def _alike(first: list, second: list) -> list:
    """The entries of ``second`` that ``first`` holds identically."""

    def signature(entry: Any) -> str:
        return json.dumps(asdict(entry), sort_keys=True, default=str)

    seen = {signature(entry) for entry in first}
    return [entry for entry in second if signature(entry) in seen]


def _alike_orphans(first: list[Orphan], second: list[Orphan]) -> list[Orphan]:
    """Orphans of the same alias and customer in both passes (their count may grow: a move
    takes every record under the alias)."""
    seen = {(orphan.alias, orphan.customer) for orphan in first}
    return [orphan for orphan in second if (orphan.alias, orphan.customer) in seen]


def move_orphans(orphans: Iterable[Orphan], records: CustomerRecords) -> int:
    """Move each alias's records to the customer its link names now (read again, consistently:
    a link that changed since the scan is left for the next run), merging its PROFILE; the
    records moved and PROFILEs merged."""
    links = Links(records)
    moved = 0
    for orphan in orphans:
        if links.resolve(orphan.alias, []) != orphan.customer:
            continue
        moved += links.rekey(orphan.alias, orphan.customer) + int(orphan.profile)
    return moved


def reconcile(
    records: CustomerRecords,
    aggregates: AggregatesStore,
    dimensions: Iterable[str],
    fix: bool = False,
    settle_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Report every difference; with ``fix``, pass again after ``settle_seconds`` and repair
    what both passes found alike (the report is the second pass's)."""
    dimensions = tuple(dimensions)
    first = survey(records, aggregates, dimensions)
    if not fix or first.unresolved == 0:
        return first
    sleep(settle_seconds)
    report = survey(records, aggregates, dimensions)
    settled = _alike(first.differences, report.differences)
    settled_outcomes = _alike(first.outcomes.differences, report.outcomes.differences)
    settled_stamps = _alike(first.stale_stamps, report.stale_stamps)
    settled_orphans = _alike_orphans(first.orphans, report.orphans)
    for difference in settled:
        report.fixed += aggregates.replace(
            difference.key, difference.shard, difference.item, difference.repaired
        )
    outcomes = OutcomesStore(aggregates.table_name, aggregates.client)
    report.outcomes.fixed = repair_outcomes(settled_outcomes, records, outcomes)
    for stale in settled_stamps:
        report.restamped += records.restamp(
            {"pk": to_attribute(stale.response), **stale.stamped},
            {"pk": to_attribute(customer_pk(stale.customer)), **stale.current},
        )
    # last: a moved response is re-stamped from its new customer's PROFILE (links.rekey)
    report.moved = move_orphans(settled_orphans, records)
    report.unsettled = (
        len(report.differences)
        + len(report.outcomes.differences)
        + len(report.stale_stamps)
        + len(report.orphans)
        - len(settled)
        - len(settled_outcomes)
        - len(settled_stamps)
        - len(settled_orphans)
    )
    return report
