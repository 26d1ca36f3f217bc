"""Billing adapters on realistic payloads: signatures, shapes per API version, MRR, ordering."""

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import stripe as stripe_sdk

from billing_providers import ADAPTERS, chargebee, generic
from billing_providers import stripe as stripe_adapter
from nps_sync.core.errors import InvalidPayload, MalformedBody, NotConfigured, SignatureError
from nps_sync.core.models import Money
from nps_sync.core.signing import basic_authorization, stripe_sign, stripe_signature
from nps_sync.ingest.receive import Batch, WebhookRequest
from nps_sync.store.secrets import provider_credentials
from tests.conftest import body_of, signed

NOW = int(time.time())
# Verified against NOW, so signed at NOW: the suite may reach this module minutes after import.
signed = partial(signed, now=NOW)
REFUSED = (InvalidPayload, MalformedBody)
STRIPE_SECRET = "whsec_dev_stripe_secret"  # local/dev-secrets.json
CHARGEBEE_USER, CHARGEBEE_PASSWORD = "dev-chargebee", "dev-chargebee-password"


def payload(name: str) -> dict:
    return json.loads(body_of("billing", name))


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- Stripe: signature -------------------------------------------------------------------


def stripe_request(body: bytes, secret: str = STRIPE_SECRET, t: int = NOW):
    return WebhookRequest(body=body, headers={"stripe-signature": stripe_sign(secret, t, body)})


def stripe_verify(request, settings, now: int = NOW) -> None:
    stripe_adapter.verify(request, provider_credentials(settings, "stripe"), now, settings)


def stripe_parse(body: bytes | dict, settings) -> Batch:
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = stripe_request(body)
    stripe_verify(request, settings)
    return stripe_adapter.parse(request, settings)


def test_stripe_accepts_its_own_signature(test_settings):
    stripe_verify(stripe_request(body_of("billing", "stripe-invoice.paid.json")), test_settings)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"stripe-signature": ""},
        {"stripe-signature": "v1=abc"},
        {"stripe-signature": f"t={NOW}"},
        {"stripe-signature": f"t={NOW},v0=abc"},
        {"stripe-signature": "t=²,v1=abc"},
        {"stripe-signature": f"t={NOW},v1=\udcff"},
        {"stripe-signature": "t=-5,v1=abc"},
    ],
)
def test_stripe_refuses_a_missing_or_unreadable_header(test_settings, headers):
    with pytest.raises(SignatureError):
        stripe_verify(WebhookRequest(body=b"{}", headers=headers), test_settings)


def test_stripe_refuses_a_tampered_body_or_another_secret(test_settings):
    body = body_of("billing", "stripe-invoice.paid.json")
    tampered = WebhookRequest(body.replace(b"19600", b"1", 1), stripe_request(body).headers)
    with pytest.raises(SignatureError):
        stripe_verify(tampered, test_settings)
    with pytest.raises(SignatureError):
        stripe_verify(stripe_request(body, secret="whsec_someone_else"), test_settings)


def test_stripe_key_is_the_literal_whsec_string_not_base64_decoded(test_settings):
    body = b'{"id":"evt_1"}'
    decoded_key = base64.b64decode("dev_stripe_secret" + "===")
    wrong = hmac.new(decoded_key, f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        stripe_verify(
            WebhookRequest(body, {"stripe-signature": f"t={NOW},v1={wrong}"}), test_settings
        )


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_stripe_refuses_stale_and_future_timestamps(test_settings, offset):
    body = body_of("billing", "stripe-invoice.paid.json")
    with pytest.raises(SignatureError, match=r"too old|future"):
        stripe_verify(stripe_request(body, t=NOW + offset), test_settings)


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_stripe_accepts_timestamps_inside_the_window_both_ways(test_settings, offset):
    body = body_of("billing", "stripe-invoice.paid.json")
    stripe_verify(stripe_request(body, t=NOW + offset), test_settings)


def test_stripe_any_v1_may_match_during_secret_rotation(test_settings):
    body = body_of("billing", "stripe-invoice.paid.json")
    old = stripe_signature("whsec_old_secret", NOW, body)
    new = stripe_signature("whsec_dev_stripe_secret", NOW, body)
    header = f"t={NOW},v1={old},v1={new},v0=deadbeef"

    stripe_verify(WebhookRequest(body, {"stripe-signature": header}), test_settings)
    only_old = f"t={NOW},v1={old}"
    with pytest.raises(SignatureError):
        stripe_verify(WebhookRequest(body, {"stripe-signature": only_old}), test_settings)


def test_stripe_library_accepts_our_signature_and_we_accept_the_librarys(test_settings):
    now = int(time.time())  # construct_event checks the window against the real clock
    secret = provider_credentials(test_settings, "stripe")["secret"]
    body = body_of("billing", "stripe-customer.subscription.updated.json")

    event = stripe_sdk.Webhook.construct_event(body, stripe_sign(secret, now, body), secret)
    assert event.id == "evt_1OqA2bLkdIwHu7ixKp3Wm9Rz"

    signed_payload = f"{now}.{body.decode()}"
    their_v1 = stripe_sdk.WebhookSignature._compute_signature(signed_payload, secret)
    stripe_verify(
        WebhookRequest(body, {"stripe-signature": f"t={now},v1={their_v1}"}), test_settings, now
    )
    their_header = stripe_sdk.WebhookSignature.generate_signature_header(body.decode(), secret, now)
    stripe_verify(WebhookRequest(body, {"stripe-signature": their_header}), test_settings, now)


# --- Stripe: events ----------------------------------------------------------------------


def test_stripe_subscription_before_basil_reads_period_discount_and_seats(test_settings):
    batch = stripe_parse(
        body_of("billing", "stripe-customer.subscription.updated.json"), test_settings
    )

    (item,) = batch.records
    profile = item.record
    assert profile.provider == "stripe" and profile.source_id == "cus_PfX2kQm8aZ1bCd"
    assert profile.customer_key == "cust-1001" and profile.customer_id == "cust-1001"
    assert profile.event_id == "evt_1OqA2bLkdIwHu7ixKp3Wm9Rz"
    assert profile.source_updated_at == at(1772445600)
    assert profile.subscription_id == "sub_1OqA1xLkdIwHu7ixQ2d4NnPa"
    assert (profile.plan, profile.status) == ("Pro monthly", "active")
    # 5 seats x 49.00, 20 % forever coupon counted once (it is in discount and discounts),
    # the metered API-calls price adds 0
    assert profile.mrr == Money(amount=19_600, currency="EUR")
    assert profile.renews_at == at(1775001600)
    assert profile.renewed is False
    assert item.raw["id"] == profile.event_id


def test_stripe_subscription_from_basil_reads_the_period_from_its_items(test_settings):
    batch = stripe_parse(
        body_of("billing", "stripe-customer.subscription.updated-basil.json"), test_settings
    )

    profile = batch.records[0].record
    assert profile.renews_at == at(1803945600)
    assert profile.customer_key == "stripe:cus_Qx7LmN2bVc9dEf"  # no e-mail on a subscription
    assert profile.plan == "price_1R8cUvLkdIwHu7ixBizYear"  # no nickname, product not expanded
    assert profile.mrr == Money(amount=9_900, currency="USD")  # yearly; discount is only an id


def test_stripe_plan_is_the_expanded_products_name_without_a_nickname(test_settings):
    event = payload("stripe-customer.subscription.updated-basil.json")
    event["data"]["object"]["items"]["data"][0]["price"]["product"] = {
        "id": "prod_Qx7KbUs1nEsSyr",
        "object": "product",
        "name": "Business",
    }
    assert stripe_parse(event, test_settings).records[0].record.plan == "Business"


def test_stripe_expanded_clover_discount_reduces_mrr_and_an_unexpanded_coupon_does_not(
    test_settings,
):
    event = payload("stripe-customer.subscription.updated-basil.json")
    sub = event["data"]["object"]
    coupon = {
        "id": "Q25",
        "object": "coupon",
        "percent_off": 25.0,
        "duration": "repeating",
        "duration_in_months": 3,
        "amount_off": None,
        "currency": None,
    }
    discount = {
        "id": "di_1R8cXeLkdIwHu7ixH7aKd2Lp",
        "object": "discount",
        "source": {"type": "coupon", "coupon": coupon},
        "end": 1780272000,
    }
    sub["discounts"] = [discount]
    assert stripe_parse(event, test_settings).records[0].record.mrr.amount == 7_425

    discount["source"]["coupon"] = "Q25"
    assert stripe_parse(event, test_settings).records[0].record.mrr.amount == 9_900

    discount["source"]["coupon"] = coupon
    discount["end"] = event["created"] - 1  # the repeating coupon ran out
    assert stripe_parse(event, test_settings).records[0].record.mrr.amount == 9_900


def test_stripe_amount_off_coupon_uses_the_subscription_currencys_option(test_settings):
    event = payload("stripe-customer.subscription.updated-basil.json")
    coupon = {
        "id": "C10",
        "amount_off": 1_000,
        "currency": "eur",
        "duration": "forever",
        "currency_options": {"usd": {"amount_off": 1_200}},
    }
    event["data"]["object"]["discounts"] = [{"id": "di_2", "source": {"coupon": coupon}}]

    # 1200 off the yearly invoice = 100 a month
    assert stripe_parse(event, test_settings).records[0].record.mrr.amount == 9_800


def test_stripe_deleted_subscription_is_canceled_with_zero_mrr(test_settings):
    event = payload("stripe-customer.subscription.updated.json")
    event["type"] = "customer.subscription.deleted"
    event["data"]["object"]["status"] = "canceled"

    profile = stripe_parse(event, test_settings).records[0].record
    assert profile.status == "canceled"
    assert profile.mrr == Money(amount=0, currency="EUR")
    assert profile.renews_at is None


def test_stripe_price_in_another_currency_is_never_summed_in(test_settings):
    event = payload("stripe-customer.subscription.updated.json")
    price = event["data"]["object"]["items"]["data"][0]["price"]
    price["currency"] = "usd"  # a multi-currency price, charged here in EUR

    # its EUR amount is only known from currency_options (when expanded): 0 and noted, not USD
    assert stripe_parse(event, test_settings).records[0].record.mrr == Money(
        amount=0, currency="EUR"
    )
    price["currency_options"] = {"eur": {"unit_amount": 4_500, "tax_behavior": "exclusive"}}
    assert stripe_parse(event, test_settings).records[0].record.mrr == Money(
        amount=4_500 * 5 * 80 // 100, currency="EUR"
    )


def test_stripe_per_seat_quarterly_and_weekly_prices(test_settings):
    event = payload("stripe-customer.subscription.updated-basil.json")
    price = event["data"]["object"]["items"]["data"][0]["price"]
    item = event["data"]["object"]["items"]["data"][0]
    price.update(unit_amount=9_000, recurring={"interval": "month", "interval_count": 3})
    item["quantity"] = 4
    assert stripe_parse(event, test_settings).records[0].record.mrr.amount == 12_000

    price.update(unit_amount=1_000, recurring={"interval": "week", "interval_count": 1})
    item["quantity"] = 1
    assert stripe_parse(event, test_settings).records[0].record.mrr.amount == 4_333


def test_stripe_invoice_paid_for_a_cycle_is_a_renewal_in_both_shapes(test_settings):
    event = payload("stripe-invoice.paid.json")

    profile = stripe_parse(event, test_settings).records[0].record
    assert (profile.status, profile.renewed) == (None, True)  # the subscription says the status
    assert profile.subscription_id == "sub_1OqA1xLkdIwHu7ixQ2d4NnPa"
    assert profile.customer_key == "ana@example.com"
    assert profile.mrr is None and profile.plan is None  # unchanged by a payment

    invoice = event["data"]["object"]
    invoice["subscription"] = invoice.pop("parent")["subscription_details"]["subscription"]
    invoice["billing_reason"] = "subscription_create"
    old = stripe_parse(event, test_settings).records[0].record
    assert old.subscription_id == "sub_1OqA1xLkdIwHu7ixQ2d4NnPa"
    assert old.renewed is False


def test_stripe_invoice_paid_without_a_subscription_is_ignored(test_settings):
    event = payload("stripe-invoice.paid.json")
    event["data"]["object"]["parent"] = None
    event["data"]["object"]["billing_reason"] = "manual"
    assert stripe_parse(event, test_settings).ignored == 1


def test_stripe_customer_update_carries_the_email_identity(test_settings):
    profile = (
        stripe_parse(body_of("billing", "stripe-customer.updated.json"), test_settings)
        .records[0]
        .record
    )

    assert profile.customer_key == "ana@example.com"
    assert profile.source_id == "cus_PfX2kQm8aZ1bCd" and profile.customer_id == "cust-1001"
    assert profile.plan is None and profile.mrr is None and profile.status is None


@pytest.mark.parametrize(
    "event",
    [
        {
            "id": "evt_1",
            "object": "event",
            "type": "charge.succeeded",
            "created": NOW,
            "data": {"object": {}},
        },
        {"id": "evt_2", "object": "event", "type": "customer.deleted"},
        {"id": "evtn_1", "object": "v2.core.event", "type": "customer.updated"},
    ],
)
def test_stripe_events_we_do_not_use_are_ignored(test_settings, event):
    batch = stripe_parse(event, test_settings)
    assert (list(batch.records), batch.ignored) == ([], 1)


# --- Chargebee ---------------------------------------------------------------------------


def chargebee_request(body: bytes, username=CHARGEBEE_USER, password=CHARGEBEE_PASSWORD):
    return WebhookRequest(body, {"authorization": basic_authorization(username, password)})


def chargebee_parse(body: bytes | dict, settings) -> Batch:
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = chargebee_request(body)
    chargebee.verify(request, provider_credentials(settings, "chargebee"), NOW, settings)
    return chargebee.parse(request, settings)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic",
        "Bearer dev-chargebee-password",
        basic_authorization("dev-chargebee", "wrong"),
        basic_authorization("someone", "dev-chargebee-password"),
        "Basic " + base64.b64encode(b"dev-chargebee").decode(),  # no colon
        "Basic not base64!",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
    ],
)
def test_chargebee_refuses_missing_or_wrong_basic_credentials(test_settings, authorization):
    headers = {} if authorization is None else {"authorization": authorization}
    request = WebhookRequest(body_of("billing", "chargebee-subscription_changed-pc2.json"), headers)
    with pytest.raises(SignatureError):
        chargebee.verify(
            request, provider_credentials(test_settings, "chargebee"), NOW, test_settings
        )


def test_chargebee_accepts_the_basic_scheme_in_any_case(test_settings):
    body = body_of("billing", "chargebee-subscription_changed-pc2.json")
    value = basic_authorization("dev-chargebee", "dev-chargebee-password").replace("Basic", "basic")
    chargebee.verify(
        WebhookRequest(body, {"authorization": value}),
        provider_credentials(test_settings, "chargebee"),
        NOW,
        test_settings,
    )


def test_chargebee_catalog_2_subscription(test_settings):
    batch = chargebee_parse(
        body_of("billing", "chargebee-subscription_changed-pc2.json"), test_settings
    )

    (item,) = batch.records
    profile = item.record
    assert profile.provider == "chargebee" and profile.source_id == "AzZTfZUvK6pRt9Ab"
    assert profile.customer_key == "ben@example.com" and profile.customer_id == "cust-2002"
    assert profile.event_id == "ev_AzZTfZUvK8fB21Xk"
    assert (profile.plan, profile.status) == ("growth-EUR-Monthly", "active")
    # (10 seats x 29.00 + support add-on 50.00) - 10 %; the one-off onboarding charge is not MRR.
    # Chargebee's own mrr field says the same: 30600.
    assert profile.mrr == Money(amount=30_600, currency="EUR")
    assert profile.renews_at == at(1775001600)
    assert profile.source_updated_at == at(1772459999) + timedelta(milliseconds=417)
    assert profile.subscription_id == "AzZTfZUvK7xQw1Lm" and profile.renewed is False
    assert item.raw["content"]["subscription"]["id"] == profile.subscription_id


def test_chargebee_catalog_1_subscription(test_settings):
    profile = (
        chargebee_parse(
            body_of("billing", "chargebee-subscription_created-pc1.json"), test_settings
        )
        .records[0]
        .record
    )

    assert profile.plan == "basic-quarterly" and profile.status == "in_trial"
    # (3 x 90.00 + 2 x 15.00) every 3 months
    assert profile.mrr == Money(amount=10_000, currency="GBP")
    assert profile.customer_key == "chloe@example.org"
    assert profile.renews_at == at(1773756000)


def test_chargebee_unit_price_times_quantity_when_amount_is_absent_and_item_periods(
    test_settings,
):
    event = payload("chargebee-subscription_changed-pc2.json")
    sub = event["content"]["subscription"]
    sub["discounts"] = []
    plan, addon = sub["subscription_items"][:2]
    del plan["amount"]
    addon.update(billing_period=1, billing_period_unit="year", unit_price=60_000, amount=60_000)

    assert chargebee_parse(event, test_settings).records[0].record.mrr.amount == 29_000 + 5_000


def test_chargebee_metered_item_counts_as_zero(test_settings):
    event = payload("chargebee-subscription_changed-pc2.json")
    event["content"]["subscription"]["discounts"] = []
    event["content"]["subscription"]["subscription_items"][1]["metered_quantity"] = "1520"

    assert chargebee_parse(event, test_settings).records[0].record.mrr.amount == 29_000


def test_chargebee_renewal_and_cancellation(test_settings):
    event = payload("chargebee-subscription_changed-pc2.json")
    event["event_type"] = "subscription_renewed"
    assert chargebee_parse(event, test_settings).records[0].record.renewed is True

    event["event_type"] = "subscription_cancelled"
    event["content"]["subscription"]["status"] = "cancelled"
    profile = chargebee_parse(event, test_settings).records[0].record
    assert profile.status == "cancelled" and profile.renewed is False
    assert profile.mrr == Money(amount=0, currency="EUR") and profile.renews_at is None


def test_chargebee_newer_resource_version_is_later_even_in_the_same_second(test_settings):
    older = payload("chargebee-subscription_changed-pc2.json")
    newer = json.loads(json.dumps(older))
    newer["id"] = "ev_AzZTfZUvK8fB21Xl"
    newer["content"]["subscription"]["resource_version"] += 1
    newer["content"]["subscription"]["subscription_items"][0]["quantity"] = 12

    # delivered out of order: the newer one first
    first = chargebee_parse(newer, test_settings).records[0].record
    second = chargebee_parse(older, test_settings).records[0].record

    assert first.source_updated_at > second.source_updated_at
    assert first.source_updated_at - second.source_updated_at == timedelta(milliseconds=1)


def test_chargebee_version_falls_back_to_updated_at_then_occurred_at(test_settings):
    event = payload("chargebee-subscription_changed-pc2.json")
    sub = event["content"]["subscription"]
    del sub["resource_version"]
    assert chargebee_parse(event, test_settings).records[0].record.source_updated_at == at(
        sub["updated_at"]
    )
    del sub["updated_at"]
    assert chargebee_parse(event, test_settings).records[0].record.source_updated_at == at(
        event["occurred_at"]
    )


def test_chargebee_customer_change_carries_the_new_email(test_settings):
    profile = (
        chargebee_parse(body_of("billing", "chargebee-customer_changed.json"), test_settings)
        .records[0]
        .record
    )

    assert profile.customer_key == "ben.okafor@example.com"
    assert profile.source_id == "AzZTfZUvK6pRt9Ab"
    assert profile.source_updated_at == at(1772469999) + timedelta(milliseconds=802)
    assert profile.plan is None and profile.mrr is None


@pytest.mark.parametrize("event_type", ["invoice_generated", "payment_succeeded", "card_added"])
def test_chargebee_events_we_do_not_use_are_ignored(test_settings, event_type):
    event = payload("chargebee-subscription_changed-pc2.json")
    event["event_type"] = event_type
    assert chargebee_parse(event, test_settings).ignored == 1


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("content"),
        lambda e: e["content"].pop("subscription"),
        lambda e: e["content"].update(subscription=None),
        lambda e: e["content"].update(subscription="sub"),
        lambda e: e["content"]["subscription"].update(subscription_items={"a": 1}),
        lambda e: e["content"]["subscription"].update(billing_period_unit="fortnight"),
        lambda e: e["content"]["subscription"].update(currency_code="euro"),
        lambda e: e["content"]["customer"].update(id="someone-else"),
        lambda e: e.update(api_version="v1"),
        lambda e: e.update(occurred_at="yesterday"),
    ],
)
def test_chargebee_wrong_shapes_are_refused_as_invalid(test_settings, mutate):
    event = payload("chargebee-subscription_changed-pc2.json")
    mutate(event)
    with pytest.raises(REFUSED):
        chargebee_parse(event, test_settings)


# --- Generic -----------------------------------------------------------------------------


def test_generic_billing_array_with_absent_fields_left_none(test_settings):
    request = signed("generic", body_of("billing", "generic.json"))
    generic.verify(request, provider_credentials(test_settings, "generic"), NOW, test_settings)

    first, second = (item.record for item in generic.parse(request, test_settings).records)
    assert first.customer_key == "dana@example.com" and first.source_id == "cust-1004"
    assert (first.plan, first.status) == ("pro", "active")
    assert first.mrr == Money(amount=4_900, currency="EUR")
    assert first.renews_at == datetime(2026, 4, 1, tzinfo=UTC)
    assert first.event_id == "evt-40"
    assert second.customer_key == "erik@example.com" and second.source_id == "erik@example.com"
    assert second.status == "past_due"
    assert second.plan is None and second.mrr is None and second.renews_at is None
    assert second.source_updated_at == datetime(2026, 3, 2, 10, 40, tzinfo=UTC)


def test_generic_billing_empty_email_with_an_id_is_kept_under_the_id(test_settings):
    item = {"id": "e1", "customer": {"email": "", "id": "c1"}, "updated_at": "2026-03-02T10:15:00Z"}
    batch = generic.parse(signed("generic", json.dumps(item).encode()), test_settings)

    profile = batch.records[0].record
    assert (profile.customer_key, profile.source_id, profile.email) == ("c1", "c1", None)


def test_generic_billing_refuses_a_bad_or_stale_signature(test_settings):
    body = body_of("billing", "generic.json")
    credentials = provider_credentials(test_settings, "generic")
    with pytest.raises(SignatureError):
        generic.verify(signed("generic", body, now=NOW - 301), credentials, NOW, test_settings)
    with pytest.raises(SignatureError):
        generic.verify(WebhookRequest(body, {}), credentials, NOW, test_settings)


@pytest.mark.parametrize(
    "item",
    [
        {"id": "e1", "customer": {}, "updated_at": "2026-03-02T10:15:00Z"},
        {"id": "e1", "customer": {"id": "c1"}},
        {"id": "e1", "customer": {"id": "c1"}, "updated_at": "2026-03-02T10:15:00"},
        {
            "id": "e1",
            "customer": {"id": "c1"},
            "updated_at": "2026-03-02T10:15:00Z",
            "mrr": {"amount": "4900", "currency": "EUR"},
        },
        {
            "id": "e1",
            "customer": {"id": "c1"},
            "updated_at": "2026-03-02T10:15:00Z",
            "mrr": {"amount": 49.5, "currency": "EUR"},
        },
        {
            "id": "e1",
            "customer": {"id": "c1"},
            "updated_at": "2026-03-02T10:15:00Z",
            "mrr": {"amount": 4900, "currency": "euro"},
        },
        {"id": "e1", "customer": {"email": "not-an-email"}, "updated_at": "2026-03-02T10:15:00Z"},
    ],
)
def test_generic_billing_wrong_shapes_are_refused(test_settings, item):
    with pytest.raises(REFUSED):
        generic.parse(signed("generic", json.dumps(item).encode()), test_settings)


# --- refusals name the rule and the path, never the value --------------------------------


@pytest.mark.parametrize("percent", [100.5, -1, "NaN", "Infinity"])
def test_a_percentage_outside_0_to_100_is_refused_naming_its_path(test_settings, percent):
    stripe_event = payload("stripe-customer.subscription.updated.json")
    stripe_event["data"]["object"]["discount"]["coupon"]["percent_off"] = percent
    chargebee_event = payload("chargebee-subscription_changed-pc2.json")
    chargebee_event["content"]["subscription"]["discounts"][0]["percentage"] = percent

    with pytest.raises(InvalidPayload) as stripe_refused:
        stripe_parse(stripe_event, test_settings)
    with pytest.raises(InvalidPayload) as chargebee_refused:
        chargebee_parse(chargebee_event, test_settings)
    assert stripe_refused.value.message == (
        "data.object.discount.coupon: Expected `decimal` >= 0 and <= 100 for percent_off"
    )
    assert chargebee_refused.value.message == (
        "content.subscription.discounts.0: Expected `decimal` >= 0 and <= 100 for percentage"
    )


STRIPE_SUB, CHARGEBEE_SUB = (
    "stripe-customer.subscription.updated.json",
    "chargebee-subscription_changed-pc2.json",
)


@pytest.mark.parametrize(
    ("name", "path", "value", "refusal"),
    [
        (STRIPE_SUB, ("created",), "1772445600", "created: Expected `int`, got `str`"),
        (
            STRIPE_SUB,
            ("data", "object", "items", "has_more"),
            0,
            "data.object.items.has_more: Expected `bool`, got `int`",
        ),
        (CHARGEBEE_SUB, ("occurred_at",), 1772459999.0, "occurred_at: Expected `int`, got `float`"),
        (
            CHARGEBEE_SUB,
            ("content", "subscription", "subscription_items", 0, "quantity"),
            "10",
            "content.subscription.subscription_items.0.quantity: Expected `int | null`, got `str`",
        ),
    ],
)
def test_numbers_and_flags_are_read_strictly(test_settings, name, path, value, refusal):
    """A string is not a number, a float not a whole number, 0 not false: a provider sends
    JSON numbers and booleans, anything else is not its documented body."""
    event = replaced(payload(name), path, value)
    parse = stripe_parse if name == STRIPE_SUB else chargebee_parse
    with pytest.raises(InvalidPayload) as refused:
        parse(event, test_settings)
    assert refused.value.message == refusal


# --- hostile input: every adapter, every field -------------------------------------------

SAMPLES = [
    ("stripe", "stripe-customer.subscription.updated.json"),
    ("stripe", "stripe-customer.subscription.updated-basil.json"),
    ("stripe", "stripe-invoice.paid.json"),
    ("stripe", "stripe-customer.updated.json"),
    ("chargebee", "chargebee-subscription_changed-pc2.json"),
    ("chargebee", "chargebee-subscription_created-pc1.json"),
    ("chargebee", "chargebee-customer_changed.json"),
    ("generic", "generic.json"),
]
WEIRD = [None, "", "x" * 600, -1, 10**20, 1.5, True, [], {}, [{}], {"id": 1}]


def paths(node, prefix=()):
    yield prefix
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from paths(child, (*prefix, key))


def replaced(document, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


@pytest.mark.parametrize(("provider", "name"), SAMPLES)
def test_hostile_values_anywhere_are_refused_cleanly_never_crash(test_settings, provider, name):
    document = payload(name)
    adapter = ADAPTERS[provider]
    for path in paths(document):
        for value in WEIRD:
            body = json.dumps(replaced(document, path, value)).encode()
            try:
                batch = adapter.parse(WebhookRequest(body, {}), test_settings)
            except REFUSED:
                continue
            assert isinstance(batch, Batch), (path, value)


@pytest.mark.parametrize("provider", ["stripe", "chargebee", "generic"])
@pytest.mark.parametrize(
    "body", [b"", b"not json", b"\xff\xfe", b'{"a":1,"a":2}', b"[NaN]", b"[" * 100_000, b"null"]
)
def test_unreadable_bodies_are_malformed_or_invalid(test_settings, provider, body):
    with pytest.raises(REFUSED):
        ADAPTERS[provider].parse(WebhookRequest(body, {}), test_settings)


# --- rotation: a provider's secret may be a list (README "Secrets") -----------------------


def test_stripe_during_a_rotation_the_old_and_the_new_secret_verify_and_a_third_does_not(
    test_settings,
):
    body = body_of("billing", "stripe-invoice.paid.json")
    rotating = {"secret": ["whsec_new", "whsec_old"]}
    for secret in ("whsec_old", "whsec_new"):
        stripe_adapter.verify(stripe_request(body, secret), rotating, NOW, test_settings)
    with pytest.raises(SignatureError):
        stripe_adapter.verify(stripe_request(body, "whsec_third"), rotating, NOW, test_settings)


@pytest.mark.parametrize(
    "rotating",
    [
        {
            "logins": [
                {"username": "new", "password": "new-pw"},
                {"username": "old", "password": "pw"},
            ]
        },
        {
            "username": "old",
            "password": "pw",
            "logins": [{"username": "new", "password": "new-pw"}],
        },
    ],
    ids=["logins", "pair-and-logins"],
)
def test_chargebee_during_a_rotation_the_old_and_the_new_login_verify_not_a_third(
    test_settings, rotating
):
    body = body_of("billing", "chargebee-subscription_changed-pc2.json")
    chargebee.verify(chargebee_request(body, "old", "pw"), rotating, NOW, test_settings)
    chargebee.verify(chargebee_request(body, "new", "new-pw"), rotating, NOW, test_settings)
    for username, password in (("third", "third-pw"), ("new", "pw"), ("old", "new-pw")):
        with pytest.raises(SignatureError):
            chargebee.verify(
                chargebee_request(body, username, password), rotating, NOW, test_settings
            )


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"username": "u"},
        {"username": "u", "password": ""},
        {"logins": []},
        {"logins": "u:p"},
        {"logins": [{"username": "u"}]},
        {"logins": [{"username": "u", "password": 7}]},
        {"logins": ["u:p"]},
        {"username": "u", "password": "p", "logins": [{"password": "p"}]},
    ],
)
def test_chargebee_misconfigured_credentials_are_not_configured_not_a_crash(
    test_settings, credentials
):
    request = chargebee_request(body_of("billing", "chargebee-subscription_changed-pc2.json"))
    with pytest.raises(NotConfigured):
        chargebee.verify(request, credentials, NOW, test_settings)


@pytest.mark.parametrize("credentials", [{}, {"secret": ""}, {"secret": []}, {"secret": ["a", 1]}])
def test_stripe_misconfigured_secret_is_not_configured_not_a_crash(test_settings, credentials):
    request = stripe_request(body_of("billing", "stripe-invoice.paid.json"))
    with pytest.raises(NotConfigured):
        stripe_adapter.verify(request, credentials, NOW, test_settings)
