"""The canonical records check themselves however they are built (a msgspec Struct's own
__init__ checks nothing), and a refusal names the field and the rule, never the value."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

import msgspec
import pytest

from nps_sync.core.errors import InvalidPayload
from nps_sync.core.models import BillingProfile, CrmProfile, Money, Response, as_json, stated
from nps_sync.core.schema import validate
from nps_sync.store.records import content_hash
from nps_sync.store.secrets import ApiToken

AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
SECRET = "s3cr3t-value"  # a value no message may quote


def response(**changes) -> Response:
    fields = {
        "provider": "generic",
        "response_id": "r-1",
        "customer_key": "ana@example.com",
        "score": 9,
        "submitted_at": AT,
        "updated_at": AT,
    }
    return Response(**{**fields, **changes})


def billing(**changes) -> BillingProfile:
    fields = {
        "provider": "stripe",
        "source_id": "cus_1",
        "customer_key": "ana@example.com",
        "event_id": "evt_1",
        "source_updated_at": AT,
    }
    return BillingProfile(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"score": 11}, "score", "<= 10"),
        ({"score": -1}, "score", ">= 0"),
        ({"score": True}, "score", "got `bool`"),
        ({"score": "9"}, "score", "got `str`"),
        ({"score": 9.0}, "score", "got `float`"),
        ({"provider": ""}, "provider", "length >= 1"),
        ({"response_id": SECRET * 50}, "response_id", "length <= 512"),
        ({"email": SECRET * 50}, "email", "length <= 512"),
        ({"comment": SECRET * 2_000}, "comment", "length <= 20000"),
        ({"submitted_at": AT.replace(tzinfo=None)}, "submitted_at", "timezone"),
        ({"updated_at": "not a time " + SECRET}, "updated_at", "RFC3339"),
        ({"updated_at": datetime(1999, 12, 31, tzinfo=UTC)}, "updated_at", "before 2000-01-01"),
        ({"updated_at": datetime.now(UTC) + timedelta(days=2)}, "updated_at", "in the future"),
    ],
)
def test_a_response_built_with_a_wrong_value_is_refused_naming_the_field(changes, field, rule):
    with pytest.raises(InvalidPayload) as refused:
        response(**changes)
    assert refused.value.message.startswith(f"{field}: ")
    assert rule in refused.value.message
    assert SECRET not in refused.value.message


def test_times_are_stored_in_utc_and_rfc_3339_text_is_read_as_a_time():
    made = response(
        submitted_at=datetime(2026, 3, 2, 12, 15, tzinfo=timezone(timedelta(hours=2))),
        updated_at="2026-03-02T05:15:00-05:00",
    )
    assert made.submitted_at == AT and made.submitted_at.tzinfo is UTC
    assert made.updated_at == AT and made.updated_at.tzinfo is UTC
    assert as_json(made)["updated_at"] == "2026-03-02T10:15:00Z"


def test_a_time_past_the_last_utc_date_is_refused_not_an_overflow():
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(InvalidPayload, match="renews_at: is outside the range of dates"):
        billing(renews_at=late)


def test_a_copy_with_changes_is_checked_again():
    with pytest.raises(InvalidPayload, match="score: "):
        msgspec.structs.replace(response(), score=12)
    assert msgspec.structs.replace(response(), score=3).category == "detractor"


def test_money_is_upper_cased_iso_4217_and_whole_minor_units():
    given = billing(mrr={"amount": 4900, "currency": "EUR"})
    assert given.mrr == Money(amount=4900, currency="EUR")
    for amount, currency in [(4900, "eur"), (4900, "EURO"), (4900, "EUR\n"), (49.5, "EUR")]:
        with pytest.raises(InvalidPayload):
            Money(amount=amount, currency=currency)
    with pytest.raises(InvalidPayload, match="mrr: "):
        billing(mrr="4900 EUR")


def test_crm_properties_are_text_and_flags_are_booleans():
    fields = {
        "provider": "hubspot",
        "source_id": "contact:1",
        "customer_key": "ana@example.com",
        "event_id": "e-1",
        "source_updated_at": AT,
    }
    assert CrmProfile(**fields, properties={"tier": "gold"}).properties == {"tier": "gold"}
    with pytest.raises(InvalidPayload, match="properties: "):
        CrmProfile(**fields, properties={"tier": 1})
    with pytest.raises(InvalidPayload, match="deleted: "):
        CrmProfile(**fields, deleted="yes")


def test_the_content_hash_leaves_out_defaults_the_key_and_the_category():
    plain = response()
    assert "survey" not in stated(plain) and "category" not in stated(plain)
    assert content_hash(plain) == content_hash(response(survey=None))
    assert content_hash(plain) == content_hash(response(customer_key="ID#cust-1"))
    assert content_hash(plain) != content_hash(response(survey="q1"))
    assert content_hash(plain) != content_hash(response(score=8))


class Shape(msgspec.Struct):
    kind: Literal["a", "b"]
    score: int


def test_a_schema_refusal_names_the_path_and_never_the_refused_value():
    with pytest.raises(InvalidPayload) as refused:
        validate([{"kind": "a", "score": 1}, {"kind": SECRET, "score": 1}], list[Shape])
    assert refused.value.message == "1.kind: Invalid enum value"
    with pytest.raises(InvalidPayload) as refused:
        validate({"kind": "a", "score": "1"}, Shape, at="items.3")
    assert refused.value.message == "items.3.score: Expected `int`, got `str`"


def test_an_api_token_never_shows_in_its_repr():
    token = ApiToken(token=SECRET, scope="read")
    assert SECRET not in repr(token) and SECRET not in str([token])
