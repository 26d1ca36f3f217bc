"""Every scheme of nps_sync.core.signing: sign/verify round trips, refusals with their reason,
the replay window in both directions, and the reference libraries agreeing with ours."""

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from nps_sync.core.errors import SignatureError
from nps_sync.core.signing import (
    basic_authorization,
    basic_verify,
    check_window,
    delighted_signature,
    delighted_verify,
    header,
    hubspot_sign,
    hubspot_verify,
    standard_sign,
    standard_signature,
    standard_verify,
    stripe_sign,
    stripe_verify,
    typeform_signature,
    typeform_verify,
)
from nps_sync.store.subscriptions import new_secret

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"id":"evt_1","score":9}'
URL = "https://api.example.com/webhooks/crm/hubspot"


def test_a_missing_or_empty_header_is_named_as_its_provider_spells_it():
    assert header({"typeform-signature": "x"}, "Typeform-Signature") == "x"
    for headers in ({}, {"typeform-signature": ""}):
        with pytest.raises(SignatureError, match=r"^missing Typeform-Signature header$"):
            header(headers, "Typeform-Signature")


@pytest.mark.parametrize(
    ("offset", "reason"), [(-301, "too old"), (301, "in the future"), (-(10**6), "too old")]
)
def test_the_window_refuses_old_and_future_timestamps(offset, reason):
    with pytest.raises(SignatureError, match=reason):
        check_window(NOW + offset, NOW, 300)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_the_window_includes_its_edges(offset):
    check_window(NOW + offset, NOW, 300)


# --- Standard Webhooks ---------------------------------------------------------------------


def test_standard_matches_the_specs_test_vector():
    # standard-webhooks libraries/go/webhook_test.go TestWebhookSign (../shared/PROVIDERS.md)
    signature = standard_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_round_trip_returns_the_message_id():
    secret = new_secret()
    headers = standard_sign(secret, "msg_1", NOW, BODY)
    assert standard_verify([secret], headers, BODY, NOW) == "msg_1"


def test_standard_accepts_svix_headers():
    secret = new_secret()
    headers = {f"svix-{k[8:]}": v for k, v in standard_sign(secret, "msg_1", NOW, BODY).items()}
    assert standard_verify([secret], headers, BODY, NOW) == "msg_1"


def test_standard_any_of_several_secrets_verifies_and_any_signature_may_match():
    old, new, other = new_secret(), new_secret(), new_secret()
    headers = standard_sign(old, "msg_1", NOW, BODY)
    headers["webhook-signature"] = (
        f"v1a,unknown {standard_signature(other, 'msg_1', NOW, BODY)} "
        + headers["webhook-signature"]
    )
    assert standard_verify([new, old], headers, BODY, NOW) == "msg_1"
    with pytest.raises(SignatureError, match=r"^no webhook-signature matches$"):
        standard_verify([new], headers, BODY, NOW)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-id": ""}, "missing webhook-id, webhook-timestamp or webhook-signature"),
        ({"webhook-timestamp": "1.5e9"}, "not a unix timestamp"),
        ({"webhook-timestamp": "١٢٣"}, "not a unix timestamp"),
        ({"webhook-timestamp": str(NOW - 301)}, "too old"),
        ({"webhook-timestamp": str(NOW + 301)}, "in the future"),
        ({"webhook-id": "msg_2"}, "no webhook-signature matches"),
        ({"webhook-signature": "v1"}, "no webhook-signature matches"),
    ],
)
def test_standard_refusals_say_why(change, reason):
    secret = new_secret()
    headers = {**standard_sign(secret, "msg_1", NOW, BODY), **change}
    with pytest.raises(SignatureError, match=reason):
        standard_verify([secret], headers, BODY, NOW)


def test_standard_refuses_a_tampered_body():
    secret = new_secret()
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        standard_verify([secret], standard_sign(secret, "msg_1", NOW, BODY), BODY + b" ", NOW)


@pytest.mark.parametrize("offset", [-299, 299])
def test_standard_accepts_timestamps_inside_the_window_both_ways(offset):
    secret = new_secret()
    headers = standard_sign(secret, "msg_1", NOW + offset, BODY)
    assert standard_verify([secret], headers, BODY, NOW) == "msg_1"


def test_the_standardwebhooks_library_and_ours_accept_each_others_signatures():
    """Ours is kept (docs/decisions.md); the reference library keeps it honest both ways."""
    now = int(time.time())  # the library checks its window against the real clock
    secret = new_secret()
    assert Webhook(secret).verify(BODY, standard_sign(secret, "msg_1", now, BODY)) == {
        "id": "evt_1",
        "score": 9,
    }
    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": theirs}
    assert standard_verify([secret], headers, BODY, now) == "msg_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, standard_sign(secret, "msg_1", now, BODY))


# --- Stripe --------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_test_secret"


def test_stripe_round_trip():
    stripe_verify(STRIPE_SECRET, stripe_sign(STRIPE_SECRET, NOW, BODY), BODY, NOW, 300)


@pytest.mark.parametrize(
    ("signed_at", "reason"), [(NOW - 301, "too old"), (NOW + 301, "in the future")]
)
def test_stripe_window_both_ways(signed_at, reason):
    with pytest.raises(SignatureError, match=reason):
        stripe_verify(STRIPE_SECRET, stripe_sign(STRIPE_SECRET, signed_at, BODY), BODY, NOW, 300)


@pytest.mark.parametrize("offset", [-299, 299])
def test_stripe_accepts_timestamps_inside_the_window_both_ways(offset):
    value = stripe_sign(STRIPE_SECRET, NOW + offset, BODY)
    stripe_verify(STRIPE_SECRET, value, BODY, NOW, 300)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("t=abc,v1=abc", "^Stripe-Signature has no unix timestamp t=$"),
        ("v1=abc", "^Stripe-Signature has no unix timestamp t=$"),
        (f"t={NOW},v0=abc", "^Stripe-Signature has no v1 signature$"),
        (f"t={NOW},v1=abc", "^no v1 signature in Stripe-Signature matches$"),
    ],
)
def test_stripe_refusals_say_why(value, reason):
    with pytest.raises(SignatureError, match=reason):
        stripe_verify(STRIPE_SECRET, value, BODY, NOW, 300)


# --- Typeform and Delighted (no timestamp) -------------------------------------------------


def test_typeform_round_trip_and_refusal():
    typeform_verify("tf-secret", typeform_signature("tf-secret", BODY), BODY)
    with pytest.raises(SignatureError, match=r"^Typeform-Signature does not match$"):
        typeform_verify("tf-secret", typeform_signature("tf-secret", BODY + b" "), BODY)


def test_delighted_round_trip_with_and_without_the_prefix_and_refusal():
    value = delighted_signature("api-key", BODY)
    delighted_verify("api-key", value, BODY)
    delighted_verify("api-key", value.removeprefix("sha256="), BODY)
    with pytest.raises(SignatureError, match=r"^X-Delighted-Webhook-Signature does not match$"):
        delighted_verify("another-key", value, BODY)


# --- HubSpot -------------------------------------------------------------------------------


def test_hubspot_round_trip_signs_the_uri_as_hubspot_hashes_it():
    url = URL + "?tag=a%3Ab%20c"
    headers = hubspot_sign("client-secret", "POST", url, BODY, NOW)
    assert headers["x-hubspot-request-timestamp"] == str(NOW * 1000)
    hubspot_verify("client-secret", headers, "post", url, BODY, NOW, 300)
    decoded = URL + "?tag=a:b%20c"  # the same URI for HubSpot: %3A is decoded before hashing
    hubspot_verify("client-secret", headers, "POST", decoded, BODY, NOW, 300)


@pytest.mark.parametrize(
    ("signed_at", "reason"), [(NOW - 301, "too old"), (NOW + 301, "in the future")]
)
def test_hubspot_window_both_ways(signed_at, reason):
    headers = hubspot_sign("client-secret", "POST", URL, BODY, signed_at)
    with pytest.raises(SignatureError, match=reason):
        hubspot_verify("client-secret", headers, "POST", URL, BODY, NOW, 300)


@pytest.mark.parametrize("offset", [-299, 299])
def test_hubspot_accepts_timestamps_inside_the_window_both_ways(offset):
    headers = hubspot_sign("client-secret", "POST", URL, BODY, NOW + offset)
    hubspot_verify("client-secret", headers, "POST", URL, BODY, NOW, 300)


def test_hubspot_refuses_another_secret_or_method():
    headers = hubspot_sign("client-secret", "POST", URL, BODY, NOW)
    for secret, method in (("other", "POST"), ("client-secret", "PUT")):
        with pytest.raises(SignatureError, match=r"^X-HubSpot-Signature-v3 does not match$"):
            hubspot_verify(secret, headers, method, URL, BODY, NOW, 300)


# --- Basic auth (Chargebee) ----------------------------------------------------------------


def test_basic_round_trip_and_refusals():
    basic_verify([("user", "pass:word")], basic_authorization("user", "pass:word"))
    for value, reason in (
        ("", "missing Basic Authorization header"),
        ("Basic !!", "not Basic credentials"),
        (basic_authorization("user", "wrong"), "do not match"),
    ):
        with pytest.raises(SignatureError, match=reason):
            basic_verify([("user", "pass:word")], value)


def test_basic_any_pair_verifies_but_not_one_pairs_user_with_anothers_password():
    logins = [("new", "new-password"), ("old", "old-password")]
    basic_verify(logins, basic_authorization("new", "new-password"))
    basic_verify(logins, basic_authorization("old", "old-password"))
    for user, password in (("new", "old-password"), ("third", "third-password")):
        with pytest.raises(SignatureError, match="do not match"):
            basic_verify(logins, basic_authorization(user, password))
    with pytest.raises(SignatureError, match="no credentials"):
        basic_verify([], basic_authorization("new", "new-password"))


# --- rotation: every scheme takes a list of secrets ------------------------------------------

STANDARD_OLD, STANDARD_NEW, STANDARD_THIRD = new_secret(), new_secret(), new_secret()

# scheme -> (sign(secret) -> what verify reads, verify(secrets, signed)); the secrets are
# (old, new, third)
ROTATIONS = {
    "standard": (
        (STANDARD_OLD, STANDARD_NEW, STANDARD_THIRD),
        lambda secret: standard_sign(secret, "msg_1", NOW, BODY),
        lambda secrets, headers: standard_verify(secrets, headers, BODY, NOW),
    ),
    "stripe": (
        ("whsec_old", "whsec_new", "whsec_third"),
        lambda secret: stripe_sign(secret, NOW, BODY),
        lambda secrets, value: stripe_verify(secrets, value, BODY, NOW, 300),
    ),
    "typeform": (
        ("tf-old", "tf-new", "tf-third"),
        lambda secret: typeform_signature(secret, BODY),
        lambda secrets, value: typeform_verify(secrets, value, BODY),
    ),
    "delighted": (
        ("key-old", "key-new", "key-third"),
        lambda secret: delighted_signature(secret, BODY),
        lambda secrets, value: delighted_verify(secrets, value, BODY),
    ),
    "hubspot": (
        ("hs-old", "hs-new", "hs-third"),
        lambda secret: hubspot_sign(secret, "POST", URL, BODY, NOW),
        lambda secrets, headers: hubspot_verify(secrets, headers, "POST", URL, BODY, NOW, 300),
    ),
}


@pytest.mark.parametrize("scheme", list(ROTATIONS))
def test_during_a_rotation_the_old_and_the_new_secret_verify_and_a_third_does_not(scheme):
    (old, new, third), sign, verify = ROTATIONS[scheme]
    verify([new, old], sign(old))
    verify([new, old], sign(new))
    with pytest.raises(SignatureError):
        verify([new, old], sign(third))
    with pytest.raises(SignatureError):  # once the rotation is over, the old one is refused
        verify([new], sign(old))


# (a Standard Webhooks secret's first character is no key at all: it is not base64)
@pytest.mark.parametrize("scheme", [name for name in ROTATIONS if name != "standard"])
def test_a_bare_string_is_one_secret_not_a_list_of_characters(scheme):
    (old, _, _), sign, verify = ROTATIONS[scheme]
    verify(old, sign(old))
    signed_with_a_character = sign(old[0])
    with pytest.raises(SignatureError):
        verify(old, signed_with_a_character)


@pytest.mark.parametrize("scheme", list(ROTATIONS))
def test_an_empty_list_of_secrets_verifies_nothing(scheme):
    (old, _, _), sign, verify = ROTATIONS[scheme]
    with pytest.raises(SignatureError):
        verify([], sign(old))
