"""Our own documented billing body (DESIGN.md §5), signed per Standard Webhooks.

``mrr.amount`` is already monthly, in minor units. A field left out stays None, which the store
reads as "unchanged".
"""

from typing import Annotated

import msgspec

from nps_sync.core.models import BillingProfile, Key, Money, UtcDatetime
from nps_sync.ingest.receive import Batch, GenericProfile, generic_batch, verify_standard

verify = verify_standard


class GenericMoney(msgspec.Struct, frozen=True, kw_only=True):
    amount: Annotated[int, msgspec.Meta(ge=0, lt=10**13)]
    # \Z, not $: Python's re (msgspec's) lets $ match before a final newline
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}\Z")]


class GenericBilling(GenericProfile, frozen=True, kw_only=True):
    plan: Key | None = None
    status: Key | None = None
    mrr: GenericMoney | None = None
    renews_at: UtcDatetime | None = None


def parse(request, settings) -> Batch:
    return generic_batch(request, GenericBilling, _profile)


def _profile(item: GenericBilling, key: str) -> BillingProfile:
    return BillingProfile(
        **item.identity(key),
        email=item.customer.email or None,
        plan=item.plan,
        status=item.status,
        mrr=Money(amount=item.mrr.amount, currency=item.mrr.currency.upper()) if item.mrr else None,
        renews_at=item.renews_at,
    )
