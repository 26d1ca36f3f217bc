"""DestinationFunction: destination queue -> CRM and billing fields, each customer's latest
state once per batch, with back-off and partial batch failures (nps_sync.destinations)."""

from nps_sync.core.snapstart import cold_start

with cold_start():  # the imports: no garbage collection, then frozen
    from functools import lru_cache

    # Before pydantic, as in the other queue consumers: powertools' batch module then skips
    # building its DynamoDB, Kinesis and Kafka record models (~15 ms), typing aliases only.
    import aws_lambda_powertools.utilities.batch  # noqa: F401
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from nps_sync.core.observability import logger, metrics, tracer
    from nps_sync.destinations import clients
    from nps_sync.destinations.consumer import DestinationConsumer


@lru_cache(maxsize=1)
def consumer() -> DestinationConsumer:
    return clients.consumer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return consumer().handle(event, context)
