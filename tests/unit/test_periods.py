"""Period ranges at the edges of the calendar, and the query APIs' from/to built on them."""

from datetime import date, timedelta

import pytest

from nps_sync.core.aggregates import ZERO
from nps_sync.core.errors import BadRequest
from nps_sync.core.periods import (
    FIRST_DAY,
    GRANULARITIES,
    LAST_DAY,
    STORED,
    between,
    label,
    labels,
    rollup,
    stored,
    stored_bounds,
)
from nps_sync.query.outcomes import outcomes_report
from nps_sync.query.ranges import SeriesQuery
from nps_sync.query.series import nps_series

TODAY = date(2026, 3, 2)
RANGED = [g for g in GRANULARITIES if g != "all"]
OUT_OF_SPAN = {
    "last days of 9999": (date(9999, 12, 30), date(9999, 12, 31)),
    "to in 9999": (date(9998, 12, 1), date(9999, 1, 1)),
    "first day of all": (date(1, 1, 1), date(1, 1, 2)),
    "before 2000": (date(1999, 12, 31), date(2000, 1, 1)),
}


class Reader:
    """Stored aggregates: none. Records what was asked, to show a refusal reads nothing."""

    def __init__(self):
        self.asked = []

    def series(self, *args):
        self.asked.append(args)
        return {}

    def at_risk(self, *args):
        return [], None


@pytest.mark.parametrize(("first", "last"), OUT_OF_SPAN.values(), ids=OUT_OF_SPAN.keys())
@pytest.mark.parametrize("granularity", RANGED)
def test_a_range_outside_the_span_is_a_bad_request_not_an_overflow(granularity, first, last):
    with pytest.raises(BadRequest, match="from and to"):
        list(between(granularity, first, last))


@pytest.mark.parametrize("granularity", RANGED)
def test_the_span_ends_are_usable_by_every_granularity(granularity):
    first = list(between(granularity, FIRST_DAY, FIRST_DAY + timedelta(days=1)))
    last = list(between(granularity, LAST_DAY - timedelta(days=1), LAST_DAY))

    assert first[0] == label(granularity, FIRST_DAY)
    assert last[-1] == label(granularity, LAST_DAY)
    assert last == sorted(last) and len(last) == len(set(last))


@pytest.mark.parametrize(("first", "last"), OUT_OF_SPAN.values(), ids=OUT_OF_SPAN.keys())
@pytest.mark.parametrize("granularity", RANGED)
@pytest.mark.parametrize("report", [nps_series, outcomes_report], ids=["nps", "outcomes"])
def test_get_nps_and_outcomes_refuse_from_to_outside_the_span(report, granularity, first, last):
    """GET /nps and /outcomes?granularity=day&from=9999-12-30&to=9999-12-31 were a 500."""
    reader = Reader()
    with pytest.raises(BadRequest) as refused:
        report(
            reader,
            ("overall",),
            TODAY,
            SeriesQuery(granularity=granularity, first=first, last=last),
        )
    assert "from and to" in refused.value.message
    assert not [asked for asked in reader.asked if asked[2] == granularity]


def test_from_alone_still_runs_to_today():
    body = nps_series(
        Reader(), ("overall",), TODAY, SeriesQuery(granularity="month", first=date(2026, 1, 1))
    )
    assert [b["period"] for b in body["buckets"]] == ["2026-01", "2026-02", "2026-03"]
    assert body["buckets"][0]["n"] == ZERO.n


def test_every_granularity_is_summed_from_a_stored_one_in_one_range():
    """Days and months are stored (periods.STORED); a week is its days, a quarter, a year and
    all time their months: a read of any period asks for the stored labels it spans and rolls
    each up to the period it falls in."""
    assert set(labels(date(2026, 3, 2))) == set(STORED) == {"day", "month"}
    assert [stored(g) for g in GRANULARITIES] == ["day", "day", "month", "month", "month", "month"]
    assert stored_bounds("week", "2026-W01", "2026-W01") == ("2025-12-29", "2026-01-04")
    assert stored_bounds("quarter", "2026-Q1", "2026-Q2") == ("2026-01", "2026-06")
    assert stored_bounds("year", "2026", "2026") == ("2026-01", "2026-12")
    assert stored_bounds("day", "2026-01-05", "2026-01-06") == ("2026-01-05", "2026-01-06")
    assert rollup("week", "2026-01-04") == "2026-W01" and rollup("week", "2026-01-05") == "2026-W02"
    assert rollup("quarter", "2026-04") == "2026-Q2" and rollup("year", "2026-12") == "2026"
    assert rollup("all", "2026-12") == "all" and rollup("month", "2026-12") == "2026-12"
    assert rollup("now", "now") == "now"  # outcomes' stock counters are stored as they are
    for day in (date(2025, 12, 29), date(2026, 2, 28), date(2026, 12, 31)):
        for granularity in GRANULARITIES:
            base = stored(granularity)
            assert rollup(granularity, label(base, day)) == label(granularity, day)
