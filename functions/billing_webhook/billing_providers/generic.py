"""Our own documented billing body (DESIGN.md §5), signed per Standard Webhooks.

``mrr.amount`` is already monthly, in minor units. A field left out stays None, which the store
reads as "unchanged".
"""

from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter

from nps_sync.errors import InvalidPayload, NotConfigured
from nps_sync.identity import customer_key
from nps_sync.models import BillingProfile, CustomerRef, Key, Money, UtcDatetime
from nps_sync.signing import standard_verify
from nps_sync.webhooks import Batch, Record, load_json


def verify(request, credentials, now, settings) -> None:
    secret = credentials.get("secret")
    if not isinstance(secret, str) or not secret:
        raise NotConfigured("the generic credentials have no signing secret")
    standard_verify(
        [secret], request.headers, request.body, now, settings.signature_tolerance_seconds
    )


class GenericMoney(BaseModel):
    amount: Annotated[int, Field(strict=True, ge=0, lt=10**13)]
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]


class GenericBilling(BaseModel):
    id: Key
    customer: CustomerRef
    updated_at: UtcDatetime
    plan: Key | None = None
    status: Key | None = None
    mrr: GenericMoney | None = None
    renews_at: UtcDatetime | None = None


_BODY = TypeAdapter(GenericBilling | Annotated[list[GenericBilling], Field(max_length=500)])


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    items = _BODY.validate_python(raw)
    items, raws = (items, raw) if isinstance(items, list) else ([items], [raw])
    return Batch(
        records=[_record(item, item_raw) for item, item_raw in zip(items, raws, strict=True)]
    )


def _record(item: GenericBilling, raw) -> Record:
    key = customer_key(email=item.customer.email, customer_id=item.customer.id)
    if key is None:
        raise InvalidPayload("customer.email is not an e-mail address and customer.id is empty")
    profile = BillingProfile(
        provider="generic",
        source_id=item.customer.id or key,
        customer_key=key,
        event_id=item.id,
        source_updated_at=item.updated_at,
        email=item.customer.email or None,
        customer_id=item.customer.id,
        plan=item.plan,
        status=item.status,
        mrr=Money(amount=item.mrr.amount, currency=item.mrr.currency.upper()) if item.mrr else None,
        renews_at=item.renews_at,
    )
    return Record(profile, raw)
