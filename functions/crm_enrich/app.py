"""CrmEnrichFunction: CRM enrichment queue -> full HubSpot records -> CRM profiles."""

from functools import lru_cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from nps_sync.core.observability import logger, metrics, tracer
from nps_sync.core.settings import settings
from nps_sync.ingest.enrichment import enqueue, enrich
from nps_sync.ingest.hubspot import HubSpotClient, hubspot_property_names
from nps_sync.store.records import RecordsStore
from nps_sync.store.secrets import provider_credentials


@lru_cache(maxsize=1)
def store() -> RecordsStore:
    return RecordsStore(settings().records_table)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    config = settings()
    token = provider_credentials(config, "hubspot")["access_token"]
    hubspot = HubSpotClient(token, base_url=config.hubspot_api_url)
    queue = config.crm_enrichment_queue
    result = enrich(
        event["Records"],
        hubspot,
        lambda profile: store().put_profile(
            profile, profile.model_dump(mode="json"), config.raw_retention_days
        ),
        hubspot_property_names(config),
        follow=(lambda targets: enqueue(queue, "hubspot", targets)) if queue else None,
    )
    metrics.add_metric(name="CrmRecordsRead", unit="Count", value=len(event["Records"]))
    metrics.add_metric(name="CrmRecordsInvalid", unit="Count", value=result.invalid)
    metrics.add_metric(name="CrmContactsFollowed", unit="Count", value=result.followed)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in result.failed]}
