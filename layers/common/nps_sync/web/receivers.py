"""The HTTP entry of the three webhook functions: ``POST /webhooks/<kind>/<provider>`` in API
Gateway's event (HTTP API, payload 2.0), answered by the receive use case (nps_sync.ingest.receive).

One route needs no router: ``Receiver`` matches it and answers as powertools'
APIGatewayHttpResolver did (its path pattern, its 404, its answer format; errors mapped by
nps_sync.web.http), without importing powertools' event handler: every resolver and event
class, about a fifth of a receiver's cold start (issue 17). The query API keeps it.
"""

import base64
import re
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from nps_sync.core.errors import NpsSyncError
from nps_sync.core.observability import logger, metrics
from nps_sync.core.settings import Settings
from nps_sync.core.settings import settings as current_settings
from nps_sync.ingest.receive import WebhookRequest, receive
from nps_sync.store.records import RecordsStore
from nps_sync.web.http import Answer, error_answer, json_answer

# What powertools lets a path parameter hold (RFC 3986's safe and unsafe characters, \w), so
# that a path matches here exactly when it matched the resolver's route.
PARAMETER = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"
NOT_FOUND = {"statusCode": 404, "message": "Not found"}  # the resolver's own 404 body


def _queue_follows(queue: str, changes: list) -> None:
    from nps_sync.ingest.enqueue import enqueue_follows  # (the CRM receiver's only)

    enqueue_follows(queue, changes)


def _scheme(headers: Mapping[str, str]) -> str:
    """API Gateway tells the scheme the sender used in X-Forwarded-Proto (it is https there)."""
    return headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The exact bytes the provider sent: signatures are computed over them, not over text."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8", "surrogatepass")


def _path(event: Mapping[str, Any]) -> str:
    """The path the route is matched on: without the stage, unless it is ``$default``."""
    stage = event["requestContext"]["stage"]
    path = event["rawPath"]
    return path if stage == "$default" else path[len("/" + stage) :]


class Receiver:
    """The HTTP API app of one webhook function: ``resolve(event, context)`` answers the
    integration's response (a dict)."""

    def __init__(
        self,
        kind: str,
        adapters: Mapping[str, ModuleType],
        store_factory=None,
        clock: Callable[[], float] = time.time,
    ):
        self.kind, self.adapters, self.clock = kind, adapters, clock
        self.store_factory = store_factory
        self.rule = re.compile(f"^/webhooks/{re.escape(kind)}/(?P<provider>{PARAMETER})$")
        self.stores: dict[str, RecordsStore] = {}

    def store(self, settings: Settings) -> RecordsStore:
        if settings.records_table not in self.stores:
            table, queue = settings.records_table, settings.crm_enrichment_queue
            # an organization's contacts follow it off the request path (its queue's consumer)
            follows = (lambda changes: _queue_follows(queue, changes)) if queue else None
            made = self.store_factory(table) if self.store_factory else RecordsStore(table)
            made.organizations = made.organizations or follows
            self.stores[table] = made
        return self.stores[settings.records_table]

    def resolve(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        method, path = event["requestContext"]["http"]["method"].upper(), _path(event)
        match = self.rule.match(path) if method == "POST" else None
        if match is None:
            return json_answer(404, NOT_FOUND).proxy()
        try:
            answer = self.post(event, match["provider"])
        except NpsSyncError as error:
            answer = error_answer(error)
        except Exception:
            logger.exception("the webhook request failed")  # then Lambda's own error
            raise
        return answer.proxy()

    def post(self, event: Mapping[str, Any], provider: str) -> Answer:
        settings = current_settings()
        headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
        context = event["requestContext"]
        request = WebhookRequest(
            body=raw_body(event),
            headers=headers,
            method=context["http"]["method"],
            url=f"{_scheme(headers)}://{context['domainName']}{event['rawPath']}"
            + (f"?{event['rawQueryString']}" if event["rawQueryString"] else ""),
            query=event.get("queryStringParameters") or {},
        )
        kind, adapters = self.kind, self.adapters
        logger.append_keys(provider=provider, kind=kind)
        receipt = receive(provider, request, adapters, self.store(settings), settings, self.clock)
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
        return acknowledge(receipt) if acknowledge else json_answer(202, receipt.body())


def resolver(
    kind: str,
    adapters: Mapping[str, ModuleType],
    store_factory=None,
    clock: Callable[[], float] = time.time,
) -> Receiver:
    """The HTTP API app of one webhook function: ``POST /webhooks/<kind>/<provider>``."""
    return Receiver(kind, adapters, store_factory, clock)


def handler(kind: str, adapters: Mapping[str, ModuleType]):
    """The Lambda entry point of a webhook function, with powertools' decorators."""
    from nps_sync.core.observability import tracer

    app = resolver(kind, adapters)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict, context) -> dict:
        return app.resolve(event, context)

    return lambda_handler
