"""Recompute every aggregate from the response items and compare with the stored ones.

The offline oracle of the aggregator (tests use it too): a Scan of RecordsTable, the same
``contribution`` the aggregator uses, and a Scan of AggregatesTable. ``--fix`` sets each
differing aggregate to its expected counters, conditional on them not having moved meanwhile;
the stream marks stay as they are.

    RECORDS_TABLE=… AGGREGATES_TABLE=… python -m nps_sync.reconcile [--fix]

Exit status: 0 no differences left, 1 differences (without --fix, or some could not be fixed).
Run it when the stream is drained: records still on their way show up as differences.
It also checks the revenue outcomes (state, counters, at-risk index): nps_sync.outcome_reconcile.
"""

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .aggregate_store import AggregatesStore
from .aggregates import ZERO, AggregateKey, Counts, contribution
from .customer_records import CustomerRecords
from .outcome_reconcile import OutcomeReport, check_outcomes
from .outcome_store import OutcomesStore


@dataclass(frozen=True)
class Difference:
    key: AggregateKey
    stored: Counts | None
    expected: Counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "stored": self.stored.as_dict() if self.stored is not None else None,
            "expected": self.expected.as_dict(),
        }


@dataclass
class Report:
    responses: int = 0
    aggregates: int = 0
    differences: list[Difference] = field(default_factory=list)
    fixed: int = 0
    outcomes: OutcomeReport = field(default_factory=OutcomeReport)  # docs/outcomes.md

    def as_dict(self) -> dict[str, Any]:
        return {
            "responses": self.responses,
            "aggregates": self.aggregates,
            "differences": len(self.differences),
            "fixed": self.fixed,
            "outcome_profiles": self.outcomes.profiles,
            "outcome_differences": len(self.outcomes.differences),
            "outcomes_fixed": self.outcomes.fixed,
        }


def expected_aggregates(
    response_items: Iterable[Mapping[str, Any]], dimensions: Iterable[str]
) -> dict[AggregateKey, Counts]:
    dimensions = tuple(dimensions)
    expected: dict[AggregateKey, Counts] = {}
    for item in response_items:
        for key, counts in contribution(item, dimensions).items():
            expected[key] = expected.get(key, ZERO) + counts
    return expected


def differences(
    stored: Mapping[AggregateKey, Counts], expected: Mapping[AggregateKey, Counts]
) -> list[Difference]:
    """Every key whose stored counters are not the expected ones (absent counts as zero)."""
    return [
        Difference(key, stored.get(key), expected.get(key, ZERO))
        for key in sorted(set(stored) | set(expected))
        if stored.get(key, ZERO) != expected.get(key, ZERO)
    ]


def reconcile(
    records: CustomerRecords,
    aggregates: AggregatesStore,
    dimensions: Iterable[str],
    fix: bool = False,
) -> Report:
    dimensions = tuple(dimensions)
    report = Report()
    items = list(records.responses())
    report.responses = len(items)
    expected = expected_aggregates(items, dimensions)
    stored = {key: counts for key, counts in aggregates.scan() if key.dimension in dimensions}
    report.aggregates = len(stored)
    report.differences = differences(stored, expected)
    if fix:
        for difference in report.differences:
            report.fixed += aggregates.replace(
                difference.key, difference.stored, difference.expected
            )
    outcomes = OutcomesStore(aggregates.table_name, aggregates.client)
    report.outcomes = check_outcomes(records, outcomes, dimensions, items, fix=fix)
    return report


def main(argv: list[str] | None = None) -> int:
    from .aggregate_settings import aggregate_settings

    parser = argparse.ArgumentParser(prog="python -m nps_sync.reconcile", description=__doc__)
    parser.add_argument("--fix", action="store_true", help="repair the differing aggregates")
    args = parser.parse_args(argv)
    settings = aggregate_settings()
    report = reconcile(
        CustomerRecords(settings.records_table),
        AggregatesStore(settings.aggregates_table),
        settings.aggregate_dimensions,
        fix=args.fix,
    )
    for difference in report.differences:
        print(json.dumps(difference.as_dict(), sort_keys=True))
    for outcome in report.outcomes.differences:
        print(json.dumps(outcome.as_dict(), sort_keys=True, default=str))
    print(json.dumps(report.as_dict(), sort_keys=True), file=sys.stderr)
    unresolved = len(report.differences) - report.fixed
    unresolved += len(report.outcomes.differences) - report.outcomes.fixed
    return 0 if unresolved == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
