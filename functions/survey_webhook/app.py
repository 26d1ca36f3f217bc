"""SurveyWebhookFunction: POST /webhooks/survey/{provider} -> verified, normalized NPS responses."""

from nps_sync.core.snapstart import cold_start

with cold_start():
    from nps_sync.web.receivers import handler
    from survey_providers import ADAPTERS

    lambda_handler = handler("survey", ADAPTERS)
