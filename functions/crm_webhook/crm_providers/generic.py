"""Our own documented CRM body (DESIGN.md §5), signed per Standard Webhooks.

A field left out stays None, which the store reads as "unchanged".
"""

from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter

from nps_sync.errors import InvalidPayload, NotConfigured
from nps_sync.identity import customer_key
from nps_sync.models import CrmProfile, CustomerRef, Key, UtcDatetime
from nps_sync.signing import standard_verify
from nps_sync.webhooks import Batch, Record, load_json


def verify(request, credentials, now, settings) -> None:
    secret = credentials.get("secret")
    if not isinstance(secret, str) or not secret:
        raise NotConfigured("the generic credentials have no signing secret")
    standard_verify(
        [secret], request.headers, request.body, now, settings.signature_tolerance_seconds
    )


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


_BODY = TypeAdapter(GenericCrm | Annotated[list[GenericCrm], Field(max_length=500)])


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    items = _BODY.validate_python(raw)
    items, raws = (items, raw) if isinstance(items, list) else ([items], [raw])
    return Batch(
        records=[_record(item, item_raw) for item, item_raw in zip(items, raws, strict=True)]
    )


def _record(item: GenericCrm, raw) -> Record:
    key = customer_key(email=item.customer.email, customer_id=item.customer.id)
    if key is None:
        raise InvalidPayload("customer.email is not an e-mail address and customer.id is empty")
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
