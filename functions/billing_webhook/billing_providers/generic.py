"""Our own documented billing body (DESIGN.md §5), signed per Standard Webhooks.

``mrr.amount`` is already monthly, in minor units. A field left out stays None, which the store
reads as "unchanged".
"""

from typing import Annotated

from pydantic import BaseModel, Field

from nps_sync.core.models import BillingProfile, CustomerRef, Key, Money, UtcDatetime
from nps_sync.ingest.receive import Batch, Record, generic_items, generic_key, verify_standard

verify = verify_standard


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


def parse(request, settings) -> Batch:
    return Batch(
        records=[_record(item, raw) for item, raw in generic_items(request, GenericBilling)]
    )


def _record(item: GenericBilling, raw) -> Record:
    key = generic_key(item.customer)
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
