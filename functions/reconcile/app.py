"""ReconcileFunction: recompute the aggregates from the responses; repair them on request.

Invoke with ``{"fix": true}`` to repair; the schedule (disabled by default) only reports.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from nps_sync.aggregate_settings import aggregate_settings
from nps_sync.aggregate_store import AggregatesStore
from nps_sync.customer_records import CustomerRecords
from nps_sync.observability import logger, metrics, tracer
from nps_sync.reconcile import reconcile


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    settings = aggregate_settings()
    report = reconcile(
        CustomerRecords(settings.records_table),
        AggregatesStore(settings.aggregates_table),
        settings.aggregate_dimensions,
        fix=bool((event or {}).get("fix")),
    )
    for difference in report.differences[:100]:
        logger.warning("aggregate differs", extra=difference.as_dict())
    for outcome in report.outcomes.differences[:100]:  # revenue outcomes (docs/outcomes.md)
        logger.warning("outcome differs", extra={"outcome": outcome.kind, "key": outcome.key})
    metrics.add_metric(name="AggregateDifferences", unit="Count", value=len(report.differences))
    metrics.add_metric(name="AggregatesFixed", unit="Count", value=report.fixed)
    logger.info("reconciled", extra=report.as_dict())
    return report.as_dict()
