"""SurveyWebhookFunction: POST /webhooks/survey/{provider} -> verified, normalized responses."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from nps_sync.observability import logger, metrics, tracer
from nps_sync.webhooks import resolver
from survey_providers import ADAPTERS

app = resolver("survey", ADAPTERS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
