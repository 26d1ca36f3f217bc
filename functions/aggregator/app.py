"""AggregatorFunction: RecordsTable stream -> AggregatesTable counters, exactly once."""

from nps_sync.core.snapstart import cold_start

with cold_start():  # the imports: no garbage collection, then frozen
    from functools import lru_cache
    from typing import Any

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from nps_sync.aggregation.aggregator import Aggregator
    from nps_sync.core.observability import logger, metrics, tracer
    from nps_sync.core.settings import aggregate_settings, fanout_settings
    from nps_sync.delivery.fanout import Destinations, Fanout
    from nps_sync.delivery.outbound import DeliveryQueue, EventBus
    from nps_sync.store import aws
    from nps_sync.store.aggregates import AggregatesStore
    from nps_sync.store.customers import CustomerRecords
    from nps_sync.store.destinations import DestinationsStore
    from nps_sync.store.subscriptions import SubscriptionsStore


def fanout(dynamodb: Any) -> Fanout | None:
    """Outgoing events (docs/events.md): the bus, and the subscriptions' delivery queue."""
    settings = fanout_settings()
    if not (settings.event_bus_name or settings.delivery_queue_url):
        return None
    table = settings.subscriptions_table
    delivery_url = settings.delivery_queue_url
    destination_url = settings.destination_queue_url if table else None
    sqs = aws.client("sqs") if delivery_url or destination_url else None  # for both queues
    return Fanout(
        EventBus(settings.event_bus_name) if settings.event_bus_name else None,
        DeliveryQueue(delivery_url, sqs) if delivery_url else None,
        SubscriptionsStore(table, dynamodb) if table else None,
        (
            Destinations(DestinationsStore(table, dynamodb), DeliveryQueue(destination_url, sqs))
            if destination_url
            else None
        ),
    )


@lru_cache(maxsize=1)
def aggregator() -> Aggregator:
    settings = aggregate_settings()
    # One client per service for every store and queue: each further one is ~2-3 ms more.
    dynamodb = aws.client("dynamodb")
    return Aggregator(
        AggregatesStore(settings.aggregates_table, dynamodb),
        CustomerRecords(settings.records_table, dynamodb),
        settings.aggregate_dimensions,
        fanout=fanout(dynamodb),
        event_granularities=fanout_settings().event_granularities,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    worker = aggregator()
    answer = worker.handle(event)
    if worker.last is not None:
        metrics.add_metric(name="StreamRecords", unit="Count", value=worker.last.records)
        metrics.add_metric(name="AggregateWrites", unit="Count", value=worker.last.writes)
        metrics.add_metric(name="SegmentStamps", unit="Count", value=worker.last.stamps)
        metrics.add_metric(name="EventsDerived", unit="Count", value=worker.last.events)
        metrics.add_metric(
            name="StreamRecordsRetried", unit="Count", value=len(answer["batchItemFailures"])
        )
    return answer
