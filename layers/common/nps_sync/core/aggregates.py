"""What a change of a response item does to the aggregates, and how a stream batch is applied.

Pure except for ``apply_key``, which talks to a store passed in. The aggregates are a function
of the response items' images alone (docs/storage.md "Segment attributes on responses"): a
record's delta is contribution(new image) - contribution(old image), and deltas add, so the
order in which records are applied does not matter; only that each is applied exactly once
(docs/aggregation.md). An image is read as a models.StoredResponse (store/items.py).
"""

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from nps_sync.core.models import StoredResponse, category_of
from nps_sync.core.periods import labels, utc_date

# Counted on write; account is answered on read by default (store/response_index.py). The
# answers 0-10 are counted inside every counter item (``score_<n>``), not as a dimension.
DEFAULT_DIMENSIONS = ("overall", "plan", "region", "channel", "survey")
# Dimensions that an index of the responses can answer on read (store/response_index.py).
READ_DIMENSIONS = ("account",)
OVERALL = "overall"
UNKNOWN = "unknown"
RESPONSE_SK = "RESP"
SCORES = tuple(range(11))
NPS_COUNTERS = (
    "promoters",
    "passives",
    "detractors",
    "mrr_promoters",
    "mrr_passives",
    "mrr_detractors",
)
# The score histogram: how many answered each score, in the same item as the NPS counters, so
# that a segment's distribution costs no keys of its own (issue 17: a ``score`` dimension
# wrote 11 more keys per granularity a batch).
HISTOGRAM = tuple(f"score_{score}" for score in SCORES)
COUNTERS = NPS_COUNTERS + HISTOGRAM
SEQUENCE_WIDTH = 48  # DynamoDB stream sequence numbers are decimal strings of up to ~40 digits

# A record's old or new version as a fold reads it: a models.StoredResponse for the NPS
# aggregates, a models.StoredProfile for the outcome counters (None: absent, or another item).
Image = Any


@dataclass(frozen=True, slots=True)
class Counts:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    mrr_promoters: int = 0
    mrr_passives: int = 0
    mrr_detractors: int = 0
    score_0: int = 0
    score_1: int = 0
    score_2: int = 0
    score_3: int = 0
    score_4: int = 0
    score_5: int = 0
    score_6: int = 0
    score_7: int = 0
    score_8: int = 0
    score_9: int = 0
    score_10: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def __sub__(self, other: "Counts") -> "Counts":
        return Counts(*(a - b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in COUNTERS)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(COUNTERS, self.values(), strict=True))

    @property
    def n(self) -> int:
        return self.promoters + self.passives + self.detractors

    def histogram(self) -> dict[int, int]:
        """score -> how many answered it."""
        return {score: getattr(self, name) for score, name in zip(SCORES, HISTOGRAM, strict=True)}

    def nps_counts(self) -> "Counts":
        """The NPS counters alone, without the histogram."""
        return Counts(*self.values()[: len(NPS_COUNTERS)])

    def __bool__(self) -> bool:
        return any(self.values())


ZERO = Counts()


@dataclass(frozen=True, slots=True, order=True)
class AggregateKey:
    """A counter item's key; ``PREFIX`` sets apart other kinds of counters (outcomes)."""

    PREFIX: ClassVar[str] = ""
    dimension: str
    value: str
    granularity: str
    period: str

    @property
    def pk(self) -> str:
        return f"{self.PREFIX}{self.dimension}#{self.value}"

    @property
    def sk(self) -> str:
        return f"{self.granularity}#{self.period}"

    @classmethod
    def parse(cls, pk: str, sk: str):
        dimension, value = pk.removeprefix(cls.PREFIX).split("#", 1)
        granularity, period = sk.split("#", 1)
        return cls(dimension, value, granularity, period)

    def __str__(self) -> str:
        return f"{self.pk}/{self.sk}"


def segment_value(response: StoredResponse, dimension: str) -> str:
    if dimension == OVERALL:
        return "all"
    return response.attribute(dimension) or UNKNOWN


def contribution(
    response: StoredResponse | None, dimensions: Iterable[str]
) -> dict[AggregateKey, Counts]:
    """What one response item adds to the aggregates (nothing for any other item: None)."""
    if response is None or response.score not in SCORES:
        return {}  # not a well-formed response: counted by neither the aggregator nor reconcile
    try:
        day = utc_date(response.submitted_at or "")
    except ValueError:
        return {}
    category = category_of(response.score).value
    counts = Counts(
        **{
            f"{category}s": 1,
            f"mrr_{category}s": response.mrr_amount or 0,
            f"score_{response.score}": 1,
        }
    )
    by_granularity = labels(day)
    return {
        AggregateKey(dimension, segment_value(response, dimension), granularity, period): counts
        for dimension in dimensions
        for granularity, period in by_granularity.items()
    }


def delta(
    old: StoredResponse | None, new: StoredResponse | None, dimensions: Iterable[str]
) -> dict[AggregateKey, Counts]:
    """contribution(new) - contribution(old), without the keys where they cancel out."""
    dimensions = tuple(dimensions)
    result = contribution(new, dimensions)
    for key, counts in contribution(old, dimensions).items():
        result[key] = result.get(key, ZERO) - counts
    return {key: counts for key, counts in result.items() if counts}


def pad(sequence_number: str) -> str:
    """Fixed-width decimal, so sequence numbers compare correctly as strings in DynamoDB."""
    if not sequence_number.isdigit() or len(sequence_number) > SEQUENCE_WIDTH:
        raise ValueError(f"not a stream sequence number: {sequence_number!r}")
    return sequence_number.zfill(SEQUENCE_WIDTH)


@dataclass(frozen=True, slots=True)
class Entry:
    """One record's delta to one key: NPS Counts here, a revenue-outcome tally in outcomes.py
    (both are applied with the same marks)."""

    sequence: str  # padded
    index: int  # the record's position in its batch
    counts: Any


@dataclass
class Pending:
    """Everything a batch does to one key, in record order."""

    key: Any
    entries: list[Entry] = field(default_factory=list)

    def after(self, mark: str | None) -> list[Entry]:
        return [e for e in self.entries if mark is None or e.sequence > mark]

    @property
    def first_index(self) -> int:
        return self.entries[0].index


Change = tuple[int, str, Image | None, Image | None]  # (index, sequence number, old, new)


def fold_deltas(
    changes: Iterable[Change], delta_of: Callable[[Image | None, Image | None], Mapping]
) -> dict[Any, Pending]:
    """Coalesce a batch: every record's delta, per key, in record order."""
    pending: dict[Any, Pending] = {}
    for index, sequence, old, new in changes:
        padded = pad(sequence)
        for key, counts in delta_of(old, new).items():
            pending.setdefault(key, Pending(key)).entries.append(Entry(padded, index, counts))
    return pending


def fold(changes: Iterable[Change], dimensions: Iterable[str]) -> dict[AggregateKey, Pending]:
    dimensions = tuple(dimensions)
    return fold_deltas(changes, lambda old, new: delta(old, new, dimensions))


def total(entries: Iterable[Entry], add: Callable[[Any, Any], Any] = operator.add, zero=ZERO):
    result = zero
    for entry in entries:
        result = add(result, entry.counts)
    return result


class MarkConflict(Exception):
    """The aggregate's mark for this lane is not what the update expected."""

    def __init__(self, mark: str | None, counts: "Counts | None" = None):
        super().__init__(mark)
        self.mark = mark
        self.counts = counts  # the stored counters, when the store read them


class AggregateWriter(Protocol):
    """store.counters.Counters.add: ADD and mark in one conditional update."""

    def add(self, key: Any, lane: str, counts: Any, mark: str, **condition: Any) -> Any: ...


# Told about every write that applied entries (or was found applied already): the entries and
# the counters after it. The aggregator derives ``aggregate.updated`` events from it.
Applied = Callable[[list[Entry], Counts], None]


ATTEMPTS = 4


def apply_key(
    writer: AggregateWriter,
    pending: Pending,
    lane: str,
    forget: tuple[str, ...] = (),
    applied: Applied | None = None,
    add: Callable[[Any, Any], Any] = operator.add,
    zero: Any = ZERO,
    now: float | None = None,
) -> int:
    """Apply the entries the aggregate has not applied yet; returns the number of writes.
    ``add``/``zero`` sum the entries (Counts by default; outcomes.py passes its tallies');
    ``now`` (epoch seconds): the marks' time (they are collected by it, store/counters.py).

    The first write assumes the mark is below every entry (the usual case: one write). If the
    aggregate already holds a mark at or above an entry (a redelivery, or an SDK retry of a
    write that did succeed), only the entries above it are applied, conditional on that mark.
    A redelivery whose entries were all applied, the last of them by this shard's last write
    to the key, reports that write to ``applied`` again, so its event is derived again.
    """
    entries = pending.entries
    below: str | None = entries[0].sequence
    expected: str | None = None
    for writes in range(1, ATTEMPTS + 1):
        try:
            after = writer.add(
                pending.key,
                lane,
                total(entries, add, zero),
                entries[-1].sequence,
                below=below,
                expected=expected,
                forget=forget,
                now=now,
            )
            if applied is not None and after is not None:
                applied(entries, after)
            return writes
        except MarkConflict as conflict:
            remaining = pending.after(conflict.mark)
            if not remaining:
                last = pending.entries[-1].sequence
                if applied is not None and conflict.counts is not None and conflict.mark == last:
                    applied(entries, conflict.counts)
                return writes
            entries = remaining
            below, expected = None, conflict.mark
    raise MarkConflict(expected)
