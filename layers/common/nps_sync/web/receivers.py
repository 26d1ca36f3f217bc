"""The HTTP entry of the three webhook functions: ``POST /webhooks/<kind>/<provider>`` in API
Gateway's event, answered by the receive use case (nps_sync.ingest.receive)."""

import base64
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from nps_sync.core.settings import Settings
from nps_sync.ingest.receive import WebhookRequest, follow_up, receive
from nps_sync.store.records import RecordsStore


def _queue_follows(queue: str, changes: list) -> None:
    from nps_sync.ingest.enrichment import enqueue_follows  # (the CRM receiver's only)

    enqueue_follows(queue, changes)


def _scheme(headers: Mapping[str, str] | None) -> str:
    """API Gateway tells the scheme the sender used in X-Forwarded-Proto (it is https there)."""
    return (headers or {}).get("x-forwarded-proto", "https").split(",")[0].strip() or "https"


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The exact bytes the provider sent: signatures are computed over them, not over text."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8", "surrogatepass")


def resolver(
    kind: str,
    adapters: Mapping[str, ModuleType],
    store_factory=None,
    clock: Callable[[], float] = time.time,
):
    """The HTTP API app of one webhook function: ``POST /webhooks/<kind>/<provider>``."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from nps_sync.core.observability import logger, metrics
    from nps_sync.core.settings import settings as current_settings
    from nps_sync.web.http import json_response, register_error_handlers

    app = APIGatewayHttpResolver()
    register_error_handlers(app)
    stores: dict[str, RecordsStore] = {}

    def store(settings: Settings) -> RecordsStore:
        if settings.records_table not in stores:
            table, queue = settings.records_table, settings.crm_enrichment_queue
            # an organization's contacts follow it off the request path (its queue's consumer)
            follows = (lambda changes: _queue_follows(queue, changes)) if queue else None
            made = store_factory(table) if store_factory else RecordsStore(table)
            made.organizations = made.organizations or follows
            stores[table] = made
        return stores[settings.records_table]

    @app.post(f"/webhooks/{kind}/<provider>")
    def post_webhook(provider: str):
        event = app.current_event
        settings = current_settings()
        request = WebhookRequest(
            body=raw_body(event.raw_event),
            headers={name.lower(): value for name, value in (event.headers or {}).items()},
            method=event.request_context.http.method,
            url=f"{_scheme(event.headers)}://{event.request_context.domain_name}{event.raw_path}"
            + (f"?{event.raw_query_string}" if event.raw_query_string else ""),
            query=event.query_string_parameters or {},
        )
        logger.append_keys(provider=provider, kind=kind)
        receipt = receive(provider, request, adapters, store(settings), settings, clock)
        follow_up(adapters[provider], request, settings)
        metrics.add_metric(name="WebhookRecordsAccepted", unit="Count", value=receipt.accepted)
        metrics.add_metric(name="WebhookDuplicates", unit="Count", value=receipt.duplicates)
        metrics.add_metric(name="WebhookConflicts", unit="Count", value=receipt.conflicts)
        for conflict in receipt.conflicted:  # no e-mail, comment or raw id: refs only
            logger.warning(
                "webhook record repeats a stored version with other content; kept the stored one",
                extra={
                    "provider": provider,
                    "record": conflict.record,
                    "customer": conflict.customer,
                },
            )
        logger.info("webhook received", extra=receipt.body())
        acknowledge = getattr(adapters.get(provider), "acknowledge", None)
        return acknowledge(receipt) if acknowledge else json_response(202, receipt.body())

    return app


def handler(kind: str, adapters: Mapping[str, ModuleType]):
    """The Lambda entry point of a webhook function, with powertools' decorators."""
    from nps_sync.core.observability import logger, metrics, tracer

    app = resolver(kind, adapters)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict, context) -> dict:
        return app.resolve(event, context)

    return lambda_handler
