"""CrmEnrichFunction: CRM enrichment queue -> full HubSpot records -> CRM profiles, changed
organizations -> their contacts' PROFILEs, and erasures too large for their request."""

from nps_sync.core.snapstart import cold_start

with cold_start():  # the imports: no garbage collection, then frozen
    from functools import lru_cache

    from aws_lambda_powertools.utilities.batch import process_partial_response
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from nps_sync.core.models import as_json
    from nps_sync.core.observability import logger, metrics, tracer
    from nps_sync.core.settings import settings
    from nps_sync.ingest.enqueue import enqueue, enqueue_erasure
    from nps_sync.ingest.enrichment import (
        Enriched,
        EnrichmentBatch,
        QueuedRead,
        ReadRequest,
        enrich,
        erase_all,
        follow_all,
        hide,
    )
    from nps_sync.ingest.hubspot import HubSpotClient, hubspot_property_names
    from nps_sync.query.customers import continue_erasure
    from nps_sync.store.records import RecordsStore
    from nps_sync.store.secrets import provider_credentials

processor = EnrichmentBatch()


@lru_cache(maxsize=1)
def store() -> RecordsStore:
    return RecordsStore(settings().records_table)


def read(records: list[QueuedRead]) -> Enriched:
    """EnrichmentBatch's handler: the batch's records read from HubSpot and stored (the token
    is read for every batch, so a rotated one is picked up). CRM_ENRICHMENT_QUEUE is the queue
    the records come from: a changed company's contacts go there, and reads HubSpot
    rate-limited are hidden there for their wait, and an erasure not complete yet queues its
    next part there. "follow" and "erasure" messages need no HubSpot."""
    follows = follow_all(records, store().follow)
    erasures = erase_all(records, erase_further)
    follows = Enriched(follows.failed + erasures.failed, follows.invalid, follows.followed)
    if not any(isinstance(r.body, ReadRequest) for r in records):
        return follows
    config = settings()
    token = provider_credentials(config, "hubspot")["access_token"]
    hubspot = HubSpotClient(token, base_url=config.hubspot_api_url)
    queue = config.crm_enrichment_queue
    reads = enrich(
        records,
        hubspot,
        lambda profile: store().put_profile(profile, as_json(profile), config.raw_retention_days),
        hubspot_property_names(config),
        follow=(lambda targets: enqueue(queue, "hubspot", targets)) if queue else None,
        wait=(lambda waits: hide(queue, waits)) if queue else None,
    )
    return Enriched(reads.failed + follows.failed, reads.invalid, reads.followed + follows.followed)


def erase_further(job: str) -> None:
    """One more part of an erasure; while it is not complete, its next part is queued."""
    queue = settings().crm_enrichment_queue
    continue_erasure(store().customers, job, lambda job: enqueue_erasure(queue, job))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=read, processor=processor, context=context
    )
