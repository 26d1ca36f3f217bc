"""Survey adapters on realistic payloads: signature, normalization, updates, non-NPS forms."""

import json
import time
from functools import partial

import msgspec
import pytest

from local.signer import signed_headers
from nps_sync.core.errors import InvalidPayload, MalformedBody, NotConfigured, SignatureError
from nps_sync.core.models import Category
from nps_sync.core.signing import delighted_signature
from nps_sync.ingest.receive import WebhookRequest
from nps_sync.store.secrets import provider_credentials
from nps_sync.store.subscriptions import new_secret
from survey_providers import delighted, formbricks, generic, typeform
from tests.conftest import body_of, signed

NOW = int(time.time())
# Verified against NOW, so signed at NOW: the suite may reach this module minutes after import.
signed = partial(signed, now=NOW)


def check(adapter, provider, request, settings):
    adapter.verify(request, provider_credentials(settings, provider), NOW, settings)
    return adapter.parse(request, settings)


def tampered(request: WebhookRequest) -> WebhookRequest:
    return WebhookRequest(body=request.body.replace(b"4", b"9", 1), headers=request.headers)


# --- Typeform --------------------------------------------------------------------------


def test_typeform_nps_answer_becomes_a_detractor_with_identity_and_comment(test_settings):
    batch = check(
        typeform, "typeform", signed("typeform", body_of("survey", "typeform.json")), test_settings
    )

    (item,) = batch.records
    response = item.record
    assert (response.score, response.category) == (4, Category.DETRACTOR)
    assert response.customer_key == "ana@example.com"
    assert response.customer_id == "cust-1001"
    assert response.response_id == "a3a12ec67a1365927098a606107fac15"
    assert response.survey == "lT4Z3j" and response.channel == "in-app"
    assert response.comment == "Exports keep timing out."
    assert item.raw["form_response"]["token"] == response.response_id


@pytest.mark.parametrize("mutate", [tampered, lambda r: WebhookRequest(r.body, {})])
def test_typeform_refuses_a_bad_or_missing_signature(test_settings, mutate):
    request = mutate(signed("typeform", body_of("survey", "typeform.json")))
    with pytest.raises(SignatureError):
        typeform.verify(
            request, provider_credentials(test_settings, "typeform"), NOW, test_settings
        )


def test_typeform_opinion_scale_counts_only_when_its_ref_is_configured(test_settings):
    payload = json.loads(body_of("survey", "typeform.json"))
    nps = payload["form_response"]["answers"][0]
    nps["field"].update(type="opinion_scale", ref="likely_to_recommend")
    body = json.dumps(payload).encode()

    assert check(typeform, "typeform", signed("typeform", body), test_settings).ignored == 1
    configured = msgspec.structs.replace(
        test_settings, nps_questions={"typeform": ["likely_to_recommend"]}
    )
    assert check(typeform, "typeform", signed("typeform", body), configured).records


def test_typeform_form_without_nps_question_is_ignored_not_stored_as_zero(test_settings):
    payload = json.loads(body_of("survey", "typeform.json"))
    payload["form_response"]["answers"] = payload["form_response"]["answers"][1:]
    batch = check(
        typeform, "typeform", signed("typeform", json.dumps(payload).encode()), test_settings
    )
    assert (list(batch.records), batch.ignored) == ([], 1)


def test_typeform_identity_falls_back_to_an_email_answer(test_settings):
    payload = json.loads(body_of("survey", "typeform.json"))
    payload["form_response"]["hidden"] = {}
    payload["form_response"]["answers"].append(
        {"type": "email", "email": " Zoe@Example.COM ", "field": {"id": "e1", "type": "email"}}
    )
    batch = check(
        typeform, "typeform", signed("typeform", json.dumps(payload).encode()), test_settings
    )
    assert batch.records[0].record.customer_key == "zoe@example.com"


@pytest.mark.parametrize("score", [11, -1, "9", 7.5, True])
def test_typeform_score_outside_0_to_10_is_invalid(test_settings, score):
    payload = json.loads(body_of("survey", "typeform.json"))
    payload["form_response"]["answers"][0]["number"] = score
    with pytest.raises(InvalidPayload):
        check(typeform, "typeform", signed("typeform", json.dumps(payload).encode()), test_settings)


# --- Delighted -------------------------------------------------------------------------


def test_delighted_update_carries_score_comment_and_version(test_settings):
    batch = check(
        delighted,
        "delighted",
        signed("delighted", body_of("survey", "delighted.json")),
        test_settings,
    )
    response = batch.records[0].record
    assert (response.score, response.category) == (9, Category.PROMOTER)
    assert response.customer_key == "ben@example.org"
    assert response.customer_id == "cust-1002"
    assert response.response_id == "58201771"
    assert response.updated_at > response.submitted_at
    assert response.comment == "Support answered within minutes."


def test_delighted_accepts_the_bare_hex_signature_and_refuses_a_wrong_key(test_settings):
    body = body_of("survey", "delighted.json")
    creds = provider_credentials(test_settings, "delighted")
    bare = delighted_signature(creds["secret"], body).removeprefix("sha256=")
    delighted.verify(
        WebhookRequest(body, {"x-delighted-webhook-signature": bare}), creds, NOW, test_settings
    )
    wrong = delighted_signature("another-key", body)
    with pytest.raises(SignatureError):
        delighted.verify(
            WebhookRequest(body, {"x-delighted-webhook-signature": wrong}),
            creds,
            NOW,
            test_settings,
        )


@pytest.mark.parametrize(
    ("change", "why"),
    [({"survey_type": "csat"}, "not an NPS survey"), ({"score": None}, "no score")],
)
def test_delighted_non_nps_responses_are_ignored(test_settings, change, why):
    payload = json.loads(body_of("survey", "delighted.json"))
    payload["event_data"].update(change)
    batch = check(
        delighted, "delighted", signed("delighted", json.dumps(payload).encode()), test_settings
    )
    assert batch.ignored == 1 and not batch.records, why


def test_delighted_unsubscribe_event_is_acknowledged_and_ignored(test_settings):
    body = json.dumps(
        {
            "event_type": "unsubscribe.created",
            "event_id": "e1",
            "event_data": {"person": {"id": "1"}},
        }
    ).encode()
    assert check(delighted, "delighted", signed("delighted", body), test_settings).ignored == 1


def test_delighted_person_without_email_is_kept_under_its_provider_id(test_settings):
    payload = json.loads(body_of("survey", "delighted.json"))
    payload["event_data"]["person"]["email"] = None
    payload["event_data"]["person_properties"] = None
    batch = check(
        delighted, "delighted", signed("delighted", json.dumps(payload).encode()), test_settings
    )
    assert batch.records[0].record.customer_key == "delighted:12840391"


# --- Formbricks ------------------------------------------------------------------------


def test_formbricks_finished_response_reads_configured_question(test_settings):
    batch = check(
        formbricks,
        "formbricks",
        signed("formbricks", body_of("survey", "formbricks.json")),
        test_settings,
    )
    response = batch.records[0].record
    assert (response.score, response.category) == (7, Category.PASSIVE)
    assert response.customer_key == "chen@example.net"
    assert response.customer_id == "cust-1003"
    assert response.comment == "Good, but the mobile app lags."
    assert response.channel == "web"
    assert response.survey == "cm8x0s9zz0000l20f9y8x7w6v"


def test_formbricks_test_ping_is_acknowledged(test_settings):
    body = b'{"event":"testEndpoint"}'
    batch = check(formbricks, "formbricks", signed("formbricks", body), test_settings)
    assert (list(batch.records), batch.ignored) == ([], 1)


def test_formbricks_response_before_the_nps_answer_is_ignored(test_settings):
    payload = json.loads(body_of("survey", "formbricks.json"))
    payload["event"] = "responseCreated"
    payload["data"]["data"] = {"channel": "web"}
    batch = check(
        formbricks, "formbricks", signed("formbricks", json.dumps(payload).encode()), test_settings
    )
    assert batch.ignored == 1


@pytest.mark.parametrize("offset", [-301, 301])
def test_formbricks_signature_outside_the_replay_window_is_refused(test_settings, offset):
    request = signed("formbricks", body_of("survey", "formbricks.json"), now=NOW + offset)
    with pytest.raises(SignatureError):
        formbricks.verify(
            request, provider_credentials(test_settings, "formbricks"), NOW, test_settings
        )


# --- generic ---------------------------------------------------------------------------


def test_generic_array_normalizes_each_item_in_utc(test_settings):
    batch = check(
        generic, "generic", signed("generic", body_of("survey", "generic.json")), test_settings
    )
    first, second = (item.record for item in batch.records)
    assert (first.customer_key, first.category) == ("dana@example.com", Category.PROMOTER)
    assert second.customer_key == "cust-1005"
    assert second.submitted_at.isoformat() == "2026-03-02T10:40:00+00:00"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer": {}}, "customer"),
        ({"submitted_at": "2026-01-01T00:00:00"}, "submitted_at"),
        ({"submitted_at": "2026-01-01T00:00Z"}, "submitted_at"),
        ({"score": 12}, "score"),
        ({"score": "9"}, "score"),
    ],
    ids=["no identity", "naive timestamp", "time without seconds", "score 12", "score as string"],
)
def test_generic_invalid_items_fail_validation_on_that_field(test_settings, change, field):
    """RFC 3339 times only: a time without its seconds is not one (msgspec's parser)."""
    item = {"id": "r", "customer": {"id": "c"}, "score": 5, "submitted_at": "2026-01-01T00:00:00Z"}
    body = json.dumps({**item, **change}).encode()
    with pytest.raises(InvalidPayload) as error:
        generic.parse(signed("generic", body), test_settings)
    assert error.value.message.startswith(f"0.{field}: ")  # "<index>.<field>: rule"


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe",
        b"{",
        b'{"a": 1, "a": 2}',
        b"[" * 100_000,
        b'{"n": NaN}',
        b'{"n": ' + b"9" * 5000 + b"}",
    ],
    ids=["not utf-8", "truncated", "duplicate key", "deep nesting", "NaN", "huge number"],
)
def test_generic_unreadable_bodies_are_malformed(test_settings, body):
    with pytest.raises(MalformedBody):
        generic.parse(signed("generic", body), test_settings)


# --- times, identity fields and credentials that are not what providers send ----------------

DAY = 86_400
# Each cannot be shown in UTC, predates 2000, or is over a day ahead of the clock.
OUT_OF_RANGE_TIMES = {
    "year 10000 in UTC": "9999-12-31T23:00:00-05:00",
    "year 0 in UTC": "0001-01-01T00:00:00+14:00",
    "far past": "1970-01-01T00:00:00Z",
    "just before 2000": "1999-12-31T23:59:59Z",
    "far future": "2999-12-31T23:59:59Z",
    "two days ahead": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 2 * DAY)),
}
OUT_OF_RANGE_SECONDS = {
    "far past": 0,
    "just before 2000": 946_684_799,
    "two days ahead": NOW + 2 * DAY,
    "year 5138": 10**11 - 1,
}


def _typeform_with(change) -> bytes:
    payload = json.loads(body_of("survey", "typeform.json"))
    change(payload["form_response"])
    return json.dumps(payload).encode()


def _formbricks_with(**fields) -> bytes:
    payload = json.loads(body_of("survey", "formbricks.json"))
    payload["data"].update(fields)
    return json.dumps(payload).encode()


def _delighted_with(**fields) -> bytes:
    payload = json.loads(body_of("survey", "delighted.json"))
    payload["event_data"].update(fields)
    return json.dumps(payload).encode()


def _generic_with(**fields) -> bytes:
    item = {"id": "r", "customer": {"id": "c"}, "score": 5, "submitted_at": "2026-01-01T00:00:00Z"}
    return json.dumps({**item, **fields}).encode()


def _refused_on(adapter, provider, body, settings, value=None) -> set[str]:
    """The field the refusal names (the last step of its dotted path, "a.b: rule"), whether
    the body's schema or its record refused it. It must never quote the value."""
    with pytest.raises(InvalidPayload) as error:
        check(adapter, provider, signed(provider, body), settings)
    message = error.value.message
    if value is not None:
        assert str(value) not in message
    return {message.partition(": ")[0].rsplit(".", 1)[-1]}


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES.values(), ids=OUT_OF_RANGE_TIMES.keys())
def test_typeform_submitted_at_out_of_range_is_invalid(test_settings, when):
    body = _typeform_with(lambda form: form.update(submitted_at=when))
    assert _refused_on(typeform, "typeform", body, test_settings, when) == {"submitted_at"}


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES.values(), ids=OUT_OF_RANGE_TIMES.keys())
@pytest.mark.parametrize("field", ["createdAt", "updatedAt"])
def test_formbricks_times_out_of_range_are_invalid(test_settings, when, field):
    body = _formbricks_with(**{field: when})
    assert _refused_on(formbricks, "formbricks", body, test_settings, when) == {field}


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES.values(), ids=OUT_OF_RANGE_TIMES.keys())
@pytest.mark.parametrize("field", ["submitted_at", "updated_at"])
def test_generic_times_out_of_range_are_invalid(test_settings, when, field):
    body = _generic_with(**{field: when})
    assert _refused_on(generic, "generic", body, test_settings, when) == {field}


@pytest.mark.parametrize("seconds", OUT_OF_RANGE_SECONDS.values(), ids=OUT_OF_RANGE_SECONDS.keys())
@pytest.mark.parametrize("field", ["created_at", "updated_at"])
def test_delighted_times_out_of_range_are_invalid(test_settings, seconds, field):
    body = _delighted_with(**{field: seconds})
    assert _refused_on(delighted, "delighted", body, test_settings) == {field}


@pytest.mark.parametrize("seconds", [1_772_446_200_000, "1772446200", 1772446200.5, True])
def test_delighted_times_are_whole_unix_seconds_only(test_settings, seconds):
    """Milliseconds, text or a fraction are refused, not read as some other date."""
    body = _delighted_with(created_at=seconds)
    assert _refused_on(delighted, "delighted", body, test_settings, seconds) == {"created_at"}


def test_times_within_range_keep_their_instant_in_utc(test_settings):
    """The bounds refuse only the absurd: an offset far east and a small clock skew pass."""
    soon = time.strftime("%Y-%m-%dT%H:%M:%S+14:00", time.gmtime(NOW + 3600 + 14 * 3600))
    batch = check(
        generic, "generic", signed("generic", _generic_with(submitted_at=soon)), test_settings
    )
    assert batch.records[0].record.submitted_at.timestamp() == NOW + 3600
    body = _delighted_with(created_at=946_684_800, updated_at=None)  # 2000-01-01T00:00:00Z
    (item,) = check(delighted, "delighted", signed("delighted", body), test_settings).records
    assert item.record.submitted_at.isoformat() == "2000-01-01T00:00:00+00:00"


@pytest.mark.parametrize("email", [12345, ["a@example.com"], {"address": "a@example.com"}, True])
def test_typeform_email_answer_that_is_not_a_string_is_invalid(test_settings, email):
    def change(form):
        form["hidden"] = {}
        form["answers"].append({"type": "email", "email": email, "field": {"type": "email"}})

    body = _typeform_with(change)
    assert _refused_on(typeform, "typeform", body, test_settings, email) == {"email"}


@pytest.mark.parametrize("hidden", [12345, ["a@example.com"], {"a": 1}, True, None, ""])
def test_typeform_hidden_email_that_is_not_a_string_falls_back_to_the_token(test_settings, hidden):
    body = _typeform_with(lambda form: form.update(hidden={"email": hidden}))
    (item,) = check(typeform, "typeform", signed("typeform", body), test_settings).records
    assert item.record.customer_key == "typeform:a3a12ec67a1365927098a606107fac15"


@pytest.mark.parametrize("value", [12345, 1.5, ["a@example.com"], {"a": "b@example.com"}, True])
def test_normalize_email_refuses_what_is_not_a_string(value):
    from nps_sync.core.identity import customer_key, normalize_email

    assert normalize_email(value) is None
    assert customer_key(email=value, customer_id="cust-1") == "cust-1"


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"secret": ""},
        {"secret": 7},
        {"token": "x"},
        {"secret": []},
        {"secret": ["dev-typeform-secret", ""]},
        {"secret": ["dev-typeform-secret", None]},
        {"secret": {"new": "dev-typeform-secret"}},
    ],
)
@pytest.mark.parametrize(
    "adapter", [typeform, delighted, formbricks, generic], ids=lambda a: a.__name__
)
def test_a_misconfigured_secret_is_not_configured_not_a_crash(test_settings, adapter, credentials):
    provider = adapter.__name__.rsplit(".", 1)[-1]
    request = signed(provider, body_of("survey", f"{provider}.json"))
    with pytest.raises(NotConfigured):
        adapter.verify(request, credentials, NOW, test_settings)


def test_delighted_without_a_survey_type_is_ignored_not_counted_as_nps(test_settings):
    payload = json.loads(body_of("survey", "delighted.json"))
    del payload["event_data"]["survey_type"]
    batch = check(
        delighted, "delighted", signed("delighted", json.dumps(payload).encode()), test_settings
    )
    assert (list(batch.records), batch.ignored) == ([], 1)


# --- rotation: a provider's secret may be a list (README "Secrets") -----------------------

ROTATING = {
    "typeform": typeform,
    "delighted": delighted,
    "formbricks": formbricks,
    "generic": generic,
}


def secrets_of(provider: str) -> tuple[str, str, str]:
    """An old, a new and a third secret, as the provider's secrets look."""
    if provider in ("formbricks", "generic"):
        return new_secret(), new_secret(), new_secret()
    return (f"{provider}-old", f"{provider}-new", f"{provider}-third")


def signed_with(provider: str, secret: str) -> WebhookRequest:
    body = body_of("survey", f"{provider}.json")
    return WebhookRequest(body, signed_headers(provider, body, {"secret": secret}, now=NOW))


@pytest.mark.parametrize("provider", list(ROTATING))
def test_during_a_rotation_the_old_and_the_new_secret_verify_and_a_third_does_not(
    test_settings, provider
):
    old, new, third = secrets_of(provider)
    rotating = {"secret": [new, old]}
    verify = partial(
        ROTATING[provider].verify, credentials=rotating, now=NOW, settings=test_settings
    )
    verify(signed_with(provider, old))
    verify(signed_with(provider, new))
    with pytest.raises(SignatureError):
        verify(signed_with(provider, third))
