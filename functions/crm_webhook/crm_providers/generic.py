"""Our own documented CRM body (DESIGN.md §5), signed per Standard Webhooks.

A field left out stays None, which the store reads as "unchanged".
"""

from typing import Annotated

from pydantic import BaseModel, Field

from nps_sync.core.models import CrmProfile, CustomerRef, Key, UtcDatetime
from nps_sync.ingest.receive import Batch, Record, generic_items, generic_key, verify_standard

verify = verify_standard

PropertyName = Annotated[str, Field(min_length=1, max_length=128)]
PropertyValue = Annotated[str, Field(max_length=2_000)]


class GenericCrm(BaseModel):
    id: Key
    customer: CustomerRef
    updated_at: UtcDatetime
    account: Key | None = None
    region: Key | None = None
    country: Key | None = None
    owner: Key | None = None
    lifecycle_stage: Key | None = None
    properties: Annotated[dict[PropertyName, PropertyValue], Field(max_length=100)] | None = None


def parse(request, settings) -> Batch:
    items = generic_items(request, GenericCrm)
    return Batch(records=[_record(item, raw) for item, raw in items])


def _record(item: GenericCrm, raw) -> Record:
    key = generic_key(item.customer)
    profile = CrmProfile(
        provider="generic",
        source_id=item.customer.id or key,
        object_type="contact",
        customer_key=key,
        event_id=item.id,
        source_updated_at=item.updated_at,
        email=item.customer.email,
        customer_id=item.customer.id,
        account=item.account,
        region=item.region,
        country=item.country,
        owner=item.owner,
        lifecycle_stage=item.lifecycle_stage,
        properties=item.properties,
    )
    return Record(profile, raw)
