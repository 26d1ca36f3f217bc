"""DeliveryFunction: delivery queue -> subscriber URLs, signed per Standard Webhooks, with
back-off and partial batch failures (nps_sync.delivery.sender)."""

from nps_sync.core.snapstart import cold_start

with cold_start():  # the imports: no garbage collection, then frozen
    from functools import lru_cache

    from aws_lambda_powertools.utilities.batch import process_partial_response
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from nps_sync.core.observability import logger, metrics, tracer
    from nps_sync.core.settings import fanout_settings
    from nps_sync.delivery.outbound import DeliveryQueue
    from nps_sync.delivery.sender import Delivery, DeliveryBatch, Sender
    from nps_sync.store.subscriptions import SubscriptionsStore

    processor = DeliveryBatch()


@lru_cache(maxsize=1)
def delivery() -> Delivery:
    settings = fanout_settings()
    if not (settings.subscriptions_table and settings.delivery_queue_url):
        raise RuntimeError("SUBSCRIPTIONS_TABLE and DELIVERY_QUEUE_URL must be set")
    return Delivery(
        SubscriptionsStore(settings.subscriptions_table),
        DeliveryQueue(settings.delivery_queue_url),
        Sender(
            allow_local=settings.allow_local_subscribers,
            timeout=settings.delivery_timeout_seconds,
        ).post,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=delivery().deliver, processor=processor, context=context
    )
