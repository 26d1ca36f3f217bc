"""The churn gap's interval against the published examples of Newcombe (1998).

Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven
methods. Stat Med 1998;17:857-872, Table I, method 3 (Wilson score, no continuity correction).
Newcombe RG. Interval estimation for the difference between independent proportions:
comparison of eleven methods. Stat Med 1998;17:873-890, Table II, method 10 (hybrid score).
The values below are copied from those tables (4 decimals), not computed.
"""

import pytest

from nps_sync.query.outcomes import churn_gap, newcombe, wilson

WILSON = [  # x, n, lower, upper
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]

NEWCOMBE_METHOD_10 = [  # x1, n1, x2, n2, lower, upper of p1 - p2
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("x", "n", "low", "high"), WILSON)
def test_wilson_interval_matches_newcombe_table_i(x, n, low, high):
    assert wilson(x, n) == pytest.approx((low, high), abs=0.00006)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), NEWCOMBE_METHOD_10)
def test_newcombe_hybrid_score_interval_matches_table_ii(x1, n1, x2, n2, low, high):
    difference, lower, upper = newcombe(x1, n1, x2, n2)
    assert difference == pytest.approx(x1 / n1 - x2 / n2)
    assert (lower, upper) == pytest.approx((low, high), abs=0.00006)


def test_churn_gap_reports_the_interval_in_points_and_whether_it_excludes_zero():
    # detractors 56 of 70 churned, promoters 48 of 80: Newcombe's example (a)
    churned = {"detractor": 56, "promoter": 48, "passive": 0, "no_response": 0}
    at_risk = {"detractor": 70, "promoter": 80, "passive": 0, "no_response": 0}
    gap = churn_gap(churned, at_risk)
    assert (gap["difference"], gap["low"], gap["high"]) == (20.0, 5.24, 33.39)
    assert gap["significant"] is True
    # example (d): the interval includes 0, so the gap is not significant
    gap = churn_gap(
        {**churned, "detractor": 5, "promoter": 0}, {**at_risk, "detractor": 56, "promoter": 29}
    )
    assert (gap["low"], gap["high"], gap["significant"]) == (-3.81, 19.26, False)


def test_churn_gap_is_null_when_either_category_has_nobody_at_risk():
    gap = churn_gap(
        {"detractor": 1, "promoter": 0, "passive": 0, "no_response": 0},
        {"detractor": 3, "promoter": 0, "passive": 0, "no_response": 0},
    )
    assert [gap[k] for k in ("difference", "low", "high", "significant")] == [None] * 4
