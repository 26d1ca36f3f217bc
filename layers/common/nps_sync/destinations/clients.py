"""A destination's client, built from the settings (each kind's base URL) and the provider
secrets (the credentials under the key the destination names), and the consumer and the
check that use it. The one place that knows which module serves which kind.

A base URL on loopback or a private network is refused unless local mode allows it
(``ALLOW_LOCAL_SUBSCRIBERS``, as for webhook subscriptions): the stand-ins of `make run`.
"""

import importlib
from functools import lru_cache
from typing import Any

from nps_sync.core.errors import BlockedUrl, NotConfigured
from nps_sync.core.settings import DestinationSettings, destination_settings
from nps_sync.delivery.outbound import DeliveryQueue
from nps_sync.delivery.ssrf import vet
from nps_sync.destinations import fields as fields_
from nps_sync.destinations.accounts import AccountSummaries
from nps_sync.destinations.base import Check, Client, DestinationError
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.destinations import Destination, DestinationsStore
from nps_sync.store.response_index import ResponseIndex
from nps_sync.store.secrets import load

MODULES = {
    "hubspot": "nps_sync.destinations.hubspot",
    "salesforce": "nps_sync.destinations.salesforce",
    "stripe": "nps_sync.destinations.stripe",
    "chargebee": "nps_sync.destinations.chargebee",
}


def base_url(kind: str, credentials: dict[str, str], settings: DestinationSettings) -> str:
    """The setting, else what the credentials name (a Salesforce instance, a Chargebee site)."""
    configured = {
        "hubspot": settings.hubspot_url,
        "salesforce": settings.salesforce_url,
        "stripe": settings.stripe_url,
        "chargebee": settings.chargebee_url,
    }[kind]
    if kind == "salesforce" and credentials.get("instance_url"):
        configured = configured or credentials["instance_url"]
    if kind == "chargebee" and not configured and credentials.get("site"):
        configured = f"https://{credentials['site']}.chargebee.com"
    if not configured:
        raise NotConfigured(f"no API base URL for {kind} destinations")
    vet(configured, allow_local=settings.allow_local_subscribers)  # BlockedUrl otherwise
    return configured


def client_for(destination: Destination, settings: DestinationSettings | None = None) -> Client:
    settings = settings or destination_settings()
    credentials = load(settings).destinations.get(destination.credentials)
    if credentials is None:
        raise DestinationError(
            f"no credentials under destinations.{destination.credentials} in the secrets"
        )
    try:
        url = base_url(destination.kind, credentials, settings)
    except (NotConfigured, BlockedUrl) as error:
        raise DestinationError(str(error)) from None
    module: Any = importlib.import_module(MODULES[destination.kind])
    return module.from_credentials(url, credentials, settings)


def check(destination: Destination) -> Check:
    mapped = fields_.mapping(destination.kind, destination.fields, destination.include_comment)
    try:
        client = client_for(destination)
        specs = {level: s for level, s in fields_.specs(mapped).items() if level in client.levels}
        return client.check(specs, create=True)
    except DestinationError as error:
        return Check(ok=False, message=str(error))


@lru_cache(maxsize=1)
def consumer():
    from nps_sync.destinations.consumer import DestinationConsumer
    from nps_sync.destinations.writer import DestinationWriter
    from nps_sync.store import aws

    settings = destination_settings()
    if not (settings.subscriptions_table and settings.destination_queue_url):
        raise RuntimeError("SUBSCRIPTIONS_TABLE and DESTINATION_QUEUE_URL must be set")
    dynamodb = aws.client("dynamodb")  # one for every store: each further one is ~3 ms
    records = CustomerRecords(settings.records_table, dynamodb)
    return DestinationConsumer(
        DestinationsStore(settings.subscriptions_table, dynamodb),
        DestinationWriter(
            records,
            lambda destination: client_for(destination, settings),
            AccountSummaries(records, ResponseIndex(settings.records_table, dynamodb)),
        ),
        DeliveryQueue(settings.destination_queue_url),
    )
