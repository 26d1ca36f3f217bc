"""``make reconcile``: reconcile against a running stack, differences as JSON lines.

    RECORDS_TABLE=… AGGREGATES_TABLE=… python -m nps_sync.cli.reconcile [--fix [--settle 10]]

Exit status: 0 no differences left, 1 differences (without --fix, or unsettled, or some could
not be fixed). Output names customers only by their customer_ref, never by key.
"""

import argparse
import json
import sys
import time

from nps_sync.aggregation.reconcile import DEFAULT_SETTLE_SECONDS, reconcile
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords


def main(argv: list[str] | None = None) -> int:
    from nps_sync.core.settings import aggregate_settings

    parser = argparse.ArgumentParser(prog="python -m nps_sync.cli.reconcile", description=__doc__)
    parser.add_argument("--fix", action="store_true", help="repair the settled differences")
    parser.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE_SECONDS,
        help="seconds between the two passes of --fix (default %(default)s)",
    )
    args = parser.parse_args(argv)
    settings = aggregate_settings()
    report = reconcile(
        CustomerRecords(settings.records_table),
        AggregatesStore(settings.aggregates_table),
        settings.aggregate_dimensions,
        fix=args.fix,
        settle_seconds=args.settle,
        sleep=lambda s: (print(f"second pass in {s:g} s", file=sys.stderr), time.sleep(s)),
    )
    for entry in (
        *report.differences,
        *report.stale_stamps,
        *report.outcomes.differences,
        *report.orphans,
    ):
        print(json.dumps(entry.as_dict(), sort_keys=True, default=str))
    print(json.dumps(report.as_dict(), sort_keys=True), file=sys.stderr)
    return 0 if report.unresolved == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
