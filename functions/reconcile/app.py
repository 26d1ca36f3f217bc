"""ReconcileFunction: recompute the aggregates from the responses; repair them on request.

Invoke with ``{"fix": true}`` to repair (optionally ``"settle_seconds"``, the pause between the
two passes, docs/aggregation.md); the schedule only reports. ``ReconcileDifferences`` counts what
the run found and left unrepaired (all of it when reporting), identity orphans included
(``IdentityOrphans``: records still under an alias that a link names another key for);
ReconcileDifferencesAlarm in template.yaml watches it. Log lines name customers by customer_ref
only.
"""

from nps_sync.core.snapstart import cold_start

with cold_start():  # the imports: no garbage collection, then frozen
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from nps_sync.aggregation.reconcile import DEFAULT_SETTLE_SECONDS, reconcile
    from nps_sync.core.observability import logger, metrics, tracer
    from nps_sync.core.settings import aggregate_settings
    from nps_sync.store import aws
    from nps_sync.store.aggregates import AggregatesStore
    from nps_sync.store.customers import CustomerRecords

LOGGED = 100  # differences logged per kind; the counts are in the metrics and the answer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    event = event or {}
    settings = aggregate_settings()
    dynamodb = aws.client("dynamodb")  # both stores': a second client is ~3 ms more
    report = reconcile(
        CustomerRecords(settings.records_table, dynamodb),
        AggregatesStore(settings.aggregates_table, dynamodb),
        settings.aggregate_dimensions,
        fix=bool(event.get("fix")),
        settle_seconds=float(event.get("settle_seconds", DEFAULT_SETTLE_SECONDS)),
    )
    for difference in report.differences[:LOGGED]:
        logger.warning("aggregate differs", extra=difference.as_dict())
    for stale in report.stale_stamps[:LOGGED]:
        logger.warning("stale segment stamp", extra=stale.as_dict())
    for outcome in report.outcomes.differences[:LOGGED]:  # revenue outcomes (docs/outcomes.md)
        logger.warning("outcome differs", extra=outcome.as_dict())
    for orphan in report.orphans[:LOGGED]:  # identity (docs/identity.md)
        logger.warning("identity orphan", extra=orphan.as_dict())
    metrics.add_metric(name="AggregateDifferences", unit="Count", value=len(report.differences))
    metrics.add_metric(name="AggregatesFixed", unit="Count", value=report.fixed)
    metrics.add_metric(name="StaleStamps", unit="Count", value=len(report.stale_stamps))
    metrics.add_metric(
        name="OutcomeDifferences", unit="Count", value=len(report.outcomes.differences)
    )
    metrics.add_metric(name="IdentityOrphans", unit="Count", value=report.orphaned)
    # Every kind, what the run left unrepaired: template.yaml ReconcileDifferencesAlarm.
    metrics.add_metric(name="ReconcileDifferences", unit="Count", value=report.unresolved)
    logger.info("reconciled", extra=report.as_dict())
    return report.as_dict()
