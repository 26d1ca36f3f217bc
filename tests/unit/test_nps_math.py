from datetime import date

import pytest

from nps_sync.core.aggregates import AggregateKey, Counts, delta, fold, pad, total
from nps_sync.core.nps import margin_of_error, nps, revenue_weighted_nps
from nps_sync.core.periods import between, label
from nps_sync.store.items import stored_response


def test_nps_is_percent_promoters_minus_percent_detractors():
    assert nps(12, 5, 3) == 45.0
    assert nps(0, 0, 4) == -100.0
    assert nps(0, 0, 0) is None


def test_margin_of_error_follows_the_95_percent_formula():
    # pP = .6, pD = .15: sqrt((.75 - .2025) / 20) * 1.96 * 100 = 32.4
    assert margin_of_error(12, 5, 3) == 32.4
    assert margin_of_error(10, 0, 0) == 0.0
    assert margin_of_error(0, 0, 0) is None


def test_revenue_weighted_nps_weighs_by_mrr_and_is_null_without_it():
    assert revenue_weighted_nps(9000, 0, 1000) == 80.0
    assert revenue_weighted_nps(0, 0, 0) is None


@pytest.mark.parametrize(
    ("day", "week"),
    [
        (date(2026, 1, 1), "2026-W01"),  # Thursday: week 1 of 2026
        (date(2025, 12, 29), "2026-W01"),  # Monday of ISO week 1 of 2026
        (date(2027, 1, 1), "2026-W53"),  # Friday: the last week of 2026
        (date(2027, 1, 3), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
        (date(2021, 1, 3), "2020-W53"),
        (date(2026, 1, 15), "2026-W03"),
    ],
)
def test_iso_week_labels_around_new_year(day, week):
    assert label("week", day) == week


def test_period_labels_of_each_granularity():
    day = date(2026, 1, 15)
    assert [label(g, day) for g in ("day", "month", "quarter", "year", "all")] == [
        "2026-01-15",
        "2026-01",
        "2026-Q1",
        "2026",
        "all",
    ]


def test_between_lists_every_overlapping_period():
    assert list(between("month", date(2026, 1, 1), date(2026, 3, 31))) == [
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    assert list(between("week", date(2026, 12, 28), date(2027, 1, 5))) == [
        "2026-W53",
        "2027-W01",
    ]
    assert list(between("quarter", date(2025, 11, 1), date(2026, 2, 1))) == ["2025-Q4", "2026-Q1"]


def _response(score, channel="email", plan=None, mrr=None, day="2026-01-15"):
    item = {
        "pk": {"S": "RESP#generic#r1"},
        "sk": {"S": "RESP"},
        "score": {"N": str(score)},
        "submitted_at": {"S": f"{day}T10:00:00.000000Z"},
        "channel": {"S": channel},
    }
    if plan:
        item["plan"] = {"S": plan}
    if mrr is not None:
        item["mrr_amount"] = {"N": str(mrr)}
    return stored_response(item)


DIMS = ("overall", "plan", "channel")


def test_an_insert_adds_one_to_every_dimension_and_stored_granularity():
    changes = delta(None, _response(10, plan="pro", mrr=500), DIMS)
    assert len(changes) == 3 * 2  # day and month; weeks to all time are summed on read
    key = AggregateKey("plan", "pro", "month", "2026-01")
    assert changes[key] == Counts(promoters=1, mrr_promoters=500, score_10=1)
    assert changes[key].histogram() == {s: int(s == 10) for s in range(11)}
    assert AggregateKey("channel", "email", "day", "2026-01-15") in changes
    assert AggregateKey("channel", "email", "week", "2026-W03") not in changes


def test_a_replacement_moves_from_old_bucket_to_new_and_same_buckets_cancel():
    changes = delta(_response(3), _response(9, channel="web"), DIMS)
    overall = AggregateKey("overall", "all", "month", "2026-01")
    assert changes[overall] == Counts(1, 0, -1, score_9=1, score_3=-1)
    assert changes[AggregateKey("channel", "email", "month", "2026-01")] == Counts(
        detractors=-1, score_3=-1
    )
    assert changes[AggregateKey("channel", "web", "month", "2026-01")] == Counts(
        promoters=1, score_9=1
    )
    # same category: only the histogram moves; the same score: nothing at all
    assert delta(_response(9), _response(10), DIMS)[overall] == Counts(score_9=-1, score_10=1)
    assert delta(_response(9), _response(9, plan=None), DIMS) == {}


def test_missing_segment_attributes_count_as_unknown_and_other_items_not_at_all():
    assert AggregateKey("plan", "unknown", "month", "2026-01") in delta(None, _response(5), DIMS)
    raw = {"pk": {"S": "RESP#generic#r1"}, "sk": {"S": "RAW#1"}}
    assert delta(None, stored_response(raw), DIMS) == {}
    assert delta(_response(5), None, DIMS)[AggregateKey("overall", "all", "month", "2026-01")] == (
        Counts(detractors=-1, score_5=-1)
    )
    out_of_range = {**raw, "sk": {"S": "RESP"}, "score": {"N": "11"}}
    assert delta(None, stored_response(out_of_range), DIMS) == {}


def test_fold_coalesces_a_batch_into_one_entry_list_per_key():
    changes = [
        (0, "100", None, _response(10)),
        (1, "101", None, _response(2)),
        (2, "102", _response(2), _response(8)),
    ]
    pending = fold(changes, ("overall",))
    assert len(pending) == 2  # one key per stored granularity, whatever the number of records
    entries = pending[AggregateKey("overall", "all", "month", "2026-01")].entries
    assert [e.index for e in entries] == [0, 1, 2]
    assert total(entries).nps_counts() == Counts(1, 1, 0)
    assert total(entries).histogram()[10] == 1 and total(entries).histogram()[8] == 1
    assert total(pending[AggregateKey("overall", "all", "month", "2026-01")].after(pad("100"))) == (
        Counts(0, 1, 0, score_8=1)
    )


def test_sequence_numbers_compare_as_padded_strings():
    assert pad("99") < pad("100")
    assert pad("4421584500000000017450439091") < pad("14421584500000000017450439091")
    with pytest.raises(ValueError):
        pad("12a")
