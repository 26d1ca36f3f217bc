"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``, HMAC-SHA256 of ``{t}.{body}``.

The key is the ``whsec_…`` string itself, not base64-decoded as in Standard Webhooks. Any v1
may match (secret rotation); v0 and unknown schemes are ignored. The window is checked both
ways, stricter than stripe-python, which only refuses old timestamps
(nps_sync.core.signing.stripe_verify).

``data.object`` follows the endpoint's API version. Before 2025-03-31.basil the period end is on
the subscription, an invoice names its subscription directly and a subscription carries one
expanded ``discount``; from basil on they moved to the items, ``invoice.parent`` and a
``discounts`` list of ids (2025-09-30.clover also moved ``discount.coupon`` to
``discount.source.coupon``, not expanded). Every shape is read; an unexpanded discount cannot
be priced and is noted instead.
"""

from datetime import UTC, datetime
from decimal import Decimal
from math import ceil, floor
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from nps_sync.core import mrr
from nps_sync.core.errors import InvalidPayload
from nps_sync.core.identity import customer_key
from nps_sync.core.models import BillingProfile, Key
from nps_sync.core.schema import decimal_within
from nps_sync.core.signing import header, stripe_verify
from nps_sync.ingest.receive import Batch, Record, load_json, signing_secrets, validate

PROVIDER = "stripe"
CUSTOMER_EVENTS = {"customer.created", "customer.updated"}
SUBSCRIPTION_EVENTS = {
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
}
INVOICE_EVENTS = {"invoice.paid"}
ENDED = {"canceled", "incomplete_expired"}  # no recurring revenue any more

Seconds = Annotated[int, msgspec.Meta(ge=0, lt=10**11)]
Minor = Annotated[int, msgspec.Meta(ge=0, lt=10**13)]
Object = TypeVar("Object")


def verify(request, credentials, now, settings) -> None:
    secrets = signing_secrets(credentials)
    given = header(request.headers, "Stripe-Signature")
    stripe_verify(secrets, given, request.body, now, settings.signature_tolerance_seconds)


# --- payload shapes (only the fields we read; everything else stays in the raw payload) ---


class Named(msgspec.Struct, frozen=True, kw_only=True):
    id: Key | None = None
    name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] | None = None


class Coupon(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    percent_off: Decimal | None = None  # 0-100, checked below
    amount_off: Minor | None = None
    currency: str | None = None
    currency_options: dict[str, dict[str, Any]] | None = None
    duration: str | None = None

    def __post_init__(self) -> None:
        decimal_within(self.percent_off, "percent_off", 100)


class DiscountSource(msgspec.Struct, frozen=True, kw_only=True):
    coupon: Coupon | str | None = None


class Discount(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    coupon: Coupon | None = None  # before 2025-09-30.clover
    source: DiscountSource | None = None  # from clover on; the coupon is an id unless expanded
    end: Seconds | None = None


class Recurring(msgspec.Struct, frozen=True, kw_only=True):
    interval: Literal["day", "week", "month", "year"]
    interval_count: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    usage_type: str | None = None


class TransformQuantity(msgspec.Struct, frozen=True, kw_only=True):
    divide_by: Annotated[int, msgspec.Meta(ge=1)]
    round: Literal["up", "down"]


class Price(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    nickname: Key | None = None
    currency: str
    unit_amount: Minor | None = None
    unit_amount_decimal: Decimal | None = None  # 0 to 10**13, checked below
    billing_scheme: str | None = None
    recurring: Recurring | None = None
    product: Named | str | None = None
    transform_quantity: TransformQuantity | None = None
    currency_options: dict[str, dict[str, Any]] | None = None  # only when expanded

    def __post_init__(self) -> None:
        decimal_within(self.unit_amount_decimal, "unit_amount_decimal", 10**13, inclusive=False)


class Item(msgspec.Struct, frozen=True, kw_only=True):
    price: Price
    quantity: Annotated[int, msgspec.Meta(ge=0, lt=10**9)] | None = None
    current_period_end: Seconds | None = None  # from 2025-03-31.basil on
    discounts: Annotated[list[Discount | Key], msgspec.Meta(max_length=50)] = []


class Items(msgspec.Struct, frozen=True, kw_only=True):
    data: Annotated[list[Item], msgspec.Meta(max_length=500)] = []
    has_more: bool = False


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    customer: Named | Key
    status: Key | None = None
    currency: str | None = None
    current_period_end: Seconds | None = None  # before 2025-03-31.basil
    cancel_at_period_end: bool | None = None
    items: Items = msgspec.field(default_factory=Items)
    discount: Discount | None = None  # before 2025-03-31.basil
    discounts: Annotated[list[Discount | Key], msgspec.Meta(max_length=50)] = []
    metadata: dict[str, Any] | None = None


class SubscriptionDetails(msgspec.Struct, frozen=True, kw_only=True):
    subscription: Named | Key | None = None


class InvoiceParent(msgspec.Struct, frozen=True, kw_only=True):
    subscription_details: SubscriptionDetails | None = None


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    customer: Named | Key | None = None
    customer_email: str | None = None
    billing_reason: str | None = None
    subscription: Named | Key | None = None  # before 2025-03-31.basil
    parent: InvoiceParent | None = None  # from basil on
    metadata: dict[str, Any] | None = None


class EventData(msgspec.Struct, Generic[Object], frozen=True, kw_only=True):
    object: Object
    previous_attributes: dict[str, Any] | None = None


class Event(msgspec.Struct, Generic[Object], frozen=True, kw_only=True):
    id: Key
    type: str
    created: Seconds
    data: EventData[Object]


# One schema per kind of event, so that the event and its object are validated in one pass.
# Subclasses, not Event[Named] aliases: msgspec looks a parametrized alias up on every call.
class CustomerEvent(Event[Named], frozen=True, kw_only=True):
    pass


class SubscriptionEvent(Event[Subscription], frozen=True, kw_only=True):
    pass


class InvoiceEvent(Event[Invoice], frozen=True, kw_only=True):
    pass


SCHEMAS: dict[str, type[Event]] = {
    **dict.fromkeys(CUSTOMER_EVENTS, CustomerEvent),
    **dict.fromkeys(SUBSCRIPTION_EVENTS, SubscriptionEvent),
    **dict.fromkeys(INVOICE_EVENTS, InvoiceEvent),
}


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    type: str = ""
    object: str | None = None  # "v2.core.event" for thin notifications, which we do not use


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    envelope = validate(raw, Envelope)
    schema = SCHEMAS.get(envelope.type)
    if envelope.object == "v2.core.event" or schema is None:
        return Batch(ignored=1)
    event = validate(raw, schema)
    if _echo(event):
        return Batch(ignored=1)
    at = datetime.fromtimestamp(event.created, UTC)
    warnings: list[tuple[str, dict[str, Any]]] = []
    if schema is CustomerEvent:
        profile = _customer(event, event.data.object, at)
    elif schema is SubscriptionEvent:
        profile = _subscription(event, event.data.object, at, warnings)
    else:
        profile = _invoice(event, event.data.object, at)
    if profile is None:
        return Batch(ignored=1)
    return Batch(records=[Record(profile, raw)], warnings=tuple(warnings))


def _echo(event: Event) -> bool:
    """A ``customer.updated`` that changed only metadata keys we do not read, such as the NPS
    fields our own write-back sets (docs/destinations.md "Echoes"): nothing to store, so no
    profile change and no new write."""
    previous = event.data.previous_attributes
    if event.type != "customer.updated" or not previous or set(previous) != {"metadata"}:
        return False
    return "customer_id" not in (previous.get("metadata") or {})


def _customer(event: Event, customer: Named, at: datetime) -> BillingProfile:
    if not customer.id:
        raise InvalidPayload("data.object.id: a customer needs an id")
    return _profile(event, at, customer.id, customer.email, customer.metadata)


def _subscription(
    event: Event, sub: Subscription, at: datetime, warnings: list | None = None
) -> BillingProfile:
    customer = sub.customer if isinstance(sub.customer, Named) else Named(id=sub.customer)
    if not customer.id:
        raise InvalidPayload("data.object.customer: a subscription needs a customer id")
    deleted = event.type == "customer.subscription.deleted"
    status = "canceled" if deleted else sub.status
    ended = deleted or status in ENDED
    money = _mrr(event, sub, at, [] if warnings is None else warnings)
    if money is not None and ended:
        money = mrr.to_money(0, money.currency)
    return _profile(
        event,
        at,
        customer.id,
        customer.email,
        sub.metadata or customer.metadata,
        plan=_plan(sub.items.data),
        status=status,
        mrr=money,
        renews_at=None if ended or sub.cancel_at_period_end else _renews_at(sub),
        subscription_id=sub.id,
    )


def _invoice(event: Event, invoice: Invoice, at: datetime) -> BillingProfile | None:
    """A paid invoice says money came in, not what the subscription is: a $0 trial invoice
    is paid while it is trialing, a final one after it was canceled. The status comes from
    the subscription's own events; a cycle's invoice is a renewal (docs/outcomes.md)."""
    details = invoice.parent.subscription_details if invoice.parent else None
    subscription = invoice.subscription or (details.subscription if details else None)
    subscription_id = _id(subscription)
    if subscription_id is None:
        return None  # a one-off invoice says nothing about the subscription
    customer_id = _id(invoice.customer)
    if customer_id is None:
        raise InvalidPayload("data.object.customer: an invoice needs a customer id")
    return _profile(
        event,
        at,
        customer_id,
        invoice.customer_email,
        invoice.metadata,
        subscription_id=subscription_id,
        renewed=invoice.billing_reason == "subscription_cycle",
    )


def _profile(event, at, source_id, email, metadata, **fields) -> BillingProfile:
    own_id = _text((metadata or {}).get("customer_id"))
    return BillingProfile(
        provider=PROVIDER,
        source_id=source_id,
        customer_key=customer_key(email, own_id, PROVIDER, source_id),
        event_id=event.id,
        source_updated_at=at,
        email=email or None,
        customer_id=own_id,
        **fields,
    )


def _plan(items: list[Item]) -> str | None:
    licensed = [item for item in items if not _metered(item.price)] or items
    if not licensed:
        return None
    price = licensed[0].price
    product_name = price.product.name if isinstance(price.product, Named) else None
    return price.nickname or product_name or price.id


def _renews_at(sub: Subscription) -> datetime | None:
    ends = [item.current_period_end for item in sub.items.data if item.current_period_end]
    end = sub.current_period_end or (min(ends) if ends else None)
    return datetime.fromtimestamp(end, UTC) if end else None


def _mrr(event: Event, sub: Subscription, at: datetime, warnings: list):
    items = sub.items.data
    currency = sub.currency or (items[0].price.currency if items else None)
    if currency is None:
        return None
    lines = [_line(item, currency) for item in items if item.price.recurring is not None]
    discounts, notes = _discounts(sub, currency)
    if any(item.discounts for item in items):
        notes.append("item-level discounts are not applied")
    if sub.items.has_more:
        notes.append("the event lists only some items")
    result = mrr.total(lines, currency, discounts, at)
    notes.extend(result.notes)
    if notes:
        warnings.append(_partial(event.id, sub.id, notes))
    return result.money


def _line(item: Item, currency: str) -> mrr.Line:
    """A price in another currency than the subscription's is charged from its
    ``currency_options``; without them (not expanded) its amount is unknown, never mixed in."""
    price = item.price
    recurring = price.recurring
    unit = price.unit_amount
    if unit is None and price.billing_scheme in (None, "per_unit"):
        unit = price.unit_amount_decimal  # sub-cent prices have only the decimal
    if price.currency.lower() != currency.lower():
        option = (price.currency_options or {}).get(currency.lower()) or {}
        unit = option.get("unit_amount") if _minor(option.get("unit_amount")) else None
    quantity = 1 if item.quantity is None else item.quantity
    if price.transform_quantity:
        rounding = ceil if price.transform_quantity.round == "up" else floor
        quantity = rounding(quantity / price.transform_quantity.divide_by)
    return mrr.Line(
        unit_amount=None if _metered(price) else unit,
        currency=currency,
        interval=recurring.interval,
        interval_count=recurring.interval_count,
        quantity=quantity,
        label=price.id,
    )


def _metered(price: Price) -> bool:
    return price.recurring is not None and price.recurring.usage_type == "metered"


def _discounts(sub: Subscription, currency: str) -> tuple[list[mrr.Discount], list[str]]:
    """Expanded discounts, each once: before basil ``discount`` is also listed in ``discounts``."""
    found: dict[str, Discount] = {}
    ids: list[str] = []
    for entry in [sub.discount, *sub.discounts]:
        if isinstance(entry, Discount):
            found.setdefault(entry.id or f"#{len(found)}", entry)
        elif isinstance(entry, str):
            ids.append(entry)
    notes = [f"{i}: discount not expanded, not applied" for i in ids if i not in found]
    result = []
    for key, discount in found.items():
        coupon = discount.coupon or (discount.source.coupon if discount.source else None)
        if not isinstance(coupon, Coupon):
            notes.append(f"{key}: coupon not expanded, not applied")
            continue
        amount_off, amount_currency = coupon.amount_off, coupon.currency
        option = (coupon.currency_options or {}).get(currency.lower()) or {}
        if _minor(option.get("amount_off")) and amount_off is not None:
            amount_off, amount_currency = option["amount_off"], currency
        result.append(
            mrr.Discount(
                percent_off=coupon.percent_off,
                amount_off=amount_off,
                currency=amount_currency,
                end=datetime.fromtimestamp(discount.end, UTC) if discount.end else None,
                label=key,
            )
        )
    return result, notes


def _partial(event_id: str, subscription_id: str, notes: list[str]) -> tuple[str, dict]:
    """The warning receive() logs: ids and what was left out, no personal data."""
    return (
        "stripe MRR is partial",
        {"event_id": event_id, "subscription_id": subscription_id, "notes": notes},
    )


def _minor(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**13


def _id(value: Named | str | None) -> str | None:
    return value.id if isinstance(value, Named) else value


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
