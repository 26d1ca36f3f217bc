"""Chargebee: HTTP Basic auth on the webhook URL (Chargebee signs nothing, sends no timestamp).

Events arrive late, twice and out of order. ``resource_version`` (milliseconds, monotonic per
resource) orders them more finely than ``updated_at`` (seconds), so it becomes the
source_updated_at, with its milliseconds kept. Product Catalog 2.0 sites send
``subscription_items``; 1.0 sites ``plan_*`` fields and ``addons``: both are read. Chargebee's
own ``mrr`` field is not used, so that both billing providers normalize alike.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from nps_sync.core import mrr
from nps_sync.core.errors import InvalidPayload, NotConfigured
from nps_sync.core.identity import customer_key
from nps_sync.core.models import BillingProfile, Key
from nps_sync.core.schema import decimal_within
from nps_sync.core.signing import basic_verify
from nps_sync.ingest.receive import Batch, Record, load_json, validate

PROVIDER = "chargebee"
SUBSCRIPTION_EVENTS = {
    "subscription_created",
    "subscription_started",
    "subscription_activated",
    "subscription_changed",
    "subscription_renewed",
    "subscription_cancelled",
    "subscription_reactivated",
    "subscription_paused",
    "subscription_resumed",
}
CUSTOMER_EVENTS = {"customer_created", "customer_changed"}
HANDLED = SUBSCRIPTION_EVENTS | CUSTOMER_EVENTS
RECURRING_ITEMS = {"plan", "addon"}  # "charge" items are one-off
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Seconds = Annotated[int, msgspec.Meta(ge=0, lt=10**11)]
Millis = Annotated[int, msgspec.Meta(ge=0, lt=10**14)]
Minor = Annotated[int, msgspec.Meta(ge=0, lt=10**13)]
Quantity = Annotated[int, msgspec.Meta(ge=0, lt=10**9)]
Period = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Unit = Literal["day", "week", "month", "year"]


def verify(request, credentials, now, settings) -> None:
    basic_verify(logins(credentials), request.headers.get("authorization", ""))


def logins(credentials: dict[str, Any]) -> list[tuple[str, str]]:
    """The accepted pairs: ``username`` and ``password``, and/or ``logins``, a list of
    ``{"username", "password"}`` while they are rotated (README "Secrets")."""
    single = [credentials] if "username" in credentials or "password" in credentials else []
    listed = credentials.get("logins", [])
    pairs = [_pair(entry) for entry in single + (listed if isinstance(listed, list) else [None])]
    if not pairs:
        raise NotConfigured("the chargebee credentials need a username and a password")
    return pairs


def _pair(entry: Any) -> tuple[str, str]:
    if isinstance(entry, dict):
        username, password = entry.get("username"), entry.get("password")
        if isinstance(username, str) and isinstance(password, str) and username and password:
            return username, password
    raise NotConfigured("the chargebee credentials need a username and a password")


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    email: str | None = None
    meta_data: dict[str, Any] | None = None
    resource_version: Millis | None = None
    updated_at: Seconds | None = None


class SubscriptionItem(msgspec.Struct, frozen=True, kw_only=True):
    item_price_id: Key
    item_type: str
    quantity: Quantity | None = None
    unit_price: Minor | None = None
    amount: Minor | None = None
    billing_period: Period | None = None
    billing_period_unit: Unit | None = None
    metered_quantity: str | None = None


class Addon(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    quantity: Quantity | None = None
    unit_price: Minor | None = None
    amount: Minor | None = None


class Discount(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    type: str | None = None  # percentage | fixed_amount | offer_quantity
    percentage: Decimal | None = None  # 0-100, checked below
    amount: Minor | None = None
    currency_code: str | None = None
    apply_on: str | None = None  # invoice_amount | specific_item_price
    included_in_mrr: bool | None = None
    apply_till: Seconds | None = None

    def __post_init__(self) -> None:
        decimal_within(self.percentage, "percentage", 100)


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    customer_id: Key
    status: Key | None = None
    currency_code: str | None = None
    billing_period: Period = 1
    billing_period_unit: Unit | None = None
    subscription_items: Annotated[list[SubscriptionItem], msgspec.Meta(max_length=500)] = []
    plan_id: Key | None = None  # Product Catalog 1.0
    plan_quantity: Quantity | None = None
    plan_unit_price: Minor | None = None
    plan_amount: Minor | None = None
    addons: Annotated[list[Addon], msgspec.Meta(max_length=500)] = []
    discounts: Annotated[list[Discount], msgspec.Meta(max_length=50)] = []
    next_billing_at: Seconds | None = None
    current_term_end: Seconds | None = None
    resource_version: Millis | None = None
    updated_at: Seconds | None = None
    meta_data: dict[str, Any] | None = None


class Content(msgspec.Struct, frozen=True, kw_only=True):
    subscription: Subscription | None = None
    customer: Customer | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    occurred_at: Seconds
    event_type: str
    api_version: str | None = None
    content: Content


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str = ""


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    event_type = validate(raw, Envelope).event_type
    if event_type not in HANDLED:
        return Batch(ignored=1)
    event = validate(raw, Event)
    if event.api_version not in (None, "v2"):
        raise InvalidPayload("api_version: only Chargebee API v2 events are read")
    warnings: list[tuple[str, dict[str, Any]]] = []
    if event_type in SUBSCRIPTION_EVENTS:
        profile = _subscription(event, warnings)
    else:
        profile = _customer(event)
    return Batch(records=[Record(profile, raw)], warnings=tuple(warnings))


def _customer(event: Event) -> BillingProfile:
    customer = event.content.customer
    if customer is None:
        raise InvalidPayload("content.customer: a customer event needs its customer")
    at = _version(customer.resource_version, customer.updated_at, event.occurred_at)
    return _profile(event, at, customer.id, customer)


def _subscription(event: Event, warnings: list | None = None) -> BillingProfile:
    sub = event.content.subscription
    if sub is None:
        raise InvalidPayload("content.subscription: a subscription event needs its subscription")
    customer = event.content.customer
    if customer is not None and customer.id != sub.customer_id:
        raise InvalidPayload("content.customer.id is not the subscription's customer_id")
    at = _version(sub.resource_version, sub.updated_at, event.occurred_at)
    cancelled = sub.status == "cancelled"
    money = _mrr(sub, at, [] if warnings is None else warnings)
    if money is not None and cancelled:
        money = mrr.to_money(0, money.currency)
    renews = None if cancelled else (sub.next_billing_at or sub.current_term_end)
    return _profile(
        event,
        at,
        sub.customer_id,
        customer,
        plan=_plan(sub),
        status=sub.status,
        mrr=money,
        renews_at=datetime.fromtimestamp(renews, UTC) if renews else None,
        subscription_id=sub.id,
        renewed=event.event_type == "subscription_renewed",
        meta_data=sub.meta_data,
    )


def _profile(event, at, source_id, customer, meta_data=None, **fields) -> BillingProfile:
    email = customer.email if customer else None
    metadata = (customer.meta_data if customer else None) or meta_data or {}
    own_id = metadata.get("customer_id")
    own_id = own_id.strip() if isinstance(own_id, str) and own_id.strip() else None
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


def _version(resource_version: int | None, updated_at: int | None, occurred_at: int) -> datetime:
    """Milliseconds kept exact (timedelta, not float seconds) so that order survives."""
    if resource_version is not None:
        return EPOCH + timedelta(milliseconds=resource_version)
    return datetime.fromtimestamp(updated_at or occurred_at, UTC)


def _plan(sub: Subscription) -> str | None:
    plan = next((i for i in sub.subscription_items if i.item_type == "plan"), None)
    return plan.item_price_id if plan else sub.plan_id


def _mrr(sub: Subscription, at: datetime, warnings: list):
    if sub.currency_code is None or sub.billing_period_unit is None:
        return None
    lines = [
        _line(i.item_price_id, i.amount, i.unit_price, i.quantity, sub, i)
        for i in sub.subscription_items
        if i.item_type in RECURRING_ITEMS
    ]
    if not sub.subscription_items and sub.plan_id:
        lines.append(
            _line(sub.plan_id, sub.plan_amount, sub.plan_unit_price, sub.plan_quantity, sub)
        )
        lines += [_line(a.id, a.amount, a.unit_price, a.quantity, sub) for a in sub.addons]
    discounts = [
        mrr.Discount(
            percent_off=d.percentage if d.type == "percentage" else None,
            amount_off=d.amount if d.type == "fixed_amount" else None,
            currency=d.currency_code,
            end=datetime.fromtimestamp(d.apply_till, UTC) if d.apply_till else None,
            label=d.id or "",
        )
        for d in sub.discounts
        # a discount on one item price, or one Chargebee keeps out of MRR, is not applied
        if d.apply_on in (None, "invoice_amount") and d.included_in_mrr is not False
    ]
    result = mrr.total(lines, sub.currency_code, discounts, at)
    if result.notes:
        # logged by receive(): ids and what was left out, no personal data
        warnings.append(
            ("chargebee MRR is partial", {"subscription_id": sub.id, "notes": list(result.notes)})
        )
    return result.money


def _line(label, amount, unit_price, quantity, sub, item=None) -> mrr.Line:
    """``amount`` already nets free quantity; without it, unit price times quantity."""
    if item is not None and item.metered_quantity is not None:
        amount = unit_price = None  # usage-based: not knowable from the event
    elif amount is None and unit_price is not None:
        amount = unit_price * (1 if quantity is None else quantity)
    return mrr.Line(
        unit_amount=amount,
        currency=sub.currency_code,
        interval=(item.billing_period_unit if item else None) or sub.billing_period_unit,
        interval_count=(item.billing_period if item else None) or sub.billing_period,
        label=label,
    )
