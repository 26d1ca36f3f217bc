"""ApiFunction: GET /nps, GET/DELETE /customers/{key}, subscriptions, GET /openapi.json, and the
dashboard: GET /dashboard, /segments, /distribution, /detractors (docs/dashboard.md)."""

from nps_sync.core.snapstart import cold_start

with cold_start():  # the imports: no garbage collection, then frozen
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from nps_sync.core.observability import logger, metrics, tracer
    from nps_sync.web.api import resolver

    app = resolver()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
