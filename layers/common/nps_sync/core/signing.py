"""Every request-authentication scheme we verify or produce, each ``verify`` with its ``sign``
twin: the adapters verify with these, and local/signer.py, the events/ samples, the tests and
the delivery sender sign with them, so no provider's formula is written twice.

Pure functions: headers are looked up lower-cased, every comparison is constant-time
(hmac.compare_digest), a signed timestamp is held to a window in both directions, and every
refusal is a SignatureError saying what is wrong. Each ``verify`` takes one secret or a list
of them (a rotation: the new and the old) and accepts a request signed with any. Providers
differ in what they sign, how they encode it and what ``whsec_`` means, so each scheme is
spelled out rather than shared. A scheme with one header takes its value (as stripe-python's
``verify_header`` does); one with several takes the headers (as svix's ``Webhook.verify`` does).
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from nps_sync.core.errors import SignatureError


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


Secrets = str | Iterable[str]  # one secret, or several while it is rotated


def each(secrets: Secrets) -> list[str]:
    """The secrets to try; a bare string is one secret, not a sequence of characters."""
    listed = [secrets] if isinstance(secrets, str) else list(secrets)
    if not listed:
        raise SignatureError("there is no secret to verify with")
    return listed


def equal(expected: str, given: str) -> bool:
    # surrogatepass: a lone surrogate in a header is a mismatch, not a UnicodeEncodeError.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def any_equal(expected: Iterable[str], given: str) -> bool:
    """Whether ``given`` is one of ``expected``, each compared in constant time."""
    matches = [equal(one, given) for one in expected]  # every one, so timing tells none
    return any(matches)


def check_window(timestamp: float, now: float, tolerance: float, *, future: bool = True) -> None:
    """Refuse a signed timestamp outside the replay window (and, by default, in the future)."""
    if timestamp < now - tolerance:
        raise SignatureError("signature timestamp is too old")
    if future and timestamp > now + tolerance:
        raise SignatureError("signature timestamp is in the future")


def header(headers: Mapping[str, str], name: str) -> str:
    """The value of header ``name`` (as its provider spells it), refused when absent or empty."""
    value = headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _unix_seconds(text: str) -> bool:
    return text.isascii() and text.isdecimal() and len(text) <= 12


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# --- Standard Webhooks (Formbricks, our generic receivers, our own outgoing deliveries) ---

STANDARD_PREFIX = "whsec_"


@lru_cache(maxsize=64)  # a handful of secrets, decoded once each, not on every request
def standard_key(secret: str) -> bytes:
    """Standard Webhooks keys are base64 after the ``whsec_`` prefix (unlike Stripe's)."""
    raw = secret.removeprefix(STANDARD_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError as error:
        raise SignatureError("signing secret is not valid base64") from error


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """One ``v1,<base64>`` entry of ``webhook-signature``; a rotation sends one per secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + _b64(hmac_sha256(standard_key(secret), signed))


def standard_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, msg_id, timestamp, body),
    }


def standard_verify(
    secrets: Secrets,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = 300,
) -> str:
    """Verify Standard Webhooks headers (``webhook-*`` or Svix's ``svix-*``); return the id."""
    prefix = "webhook-" if "webhook-signature" in headers else "svix-"
    msg_id = headers.get(prefix + "id")
    timestamp = headers.get(prefix + "timestamp")
    given = headers.get(prefix + "signature")
    if not (msg_id and timestamp and given):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not _unix_seconds(timestamp):
        raise SignatureError("webhook-timestamp is not a unix timestamp")
    check_window(int(timestamp), now, tolerance)
    # As bytes once (surrogatepass: a lone surrogate is a mismatch, not an error), and the
    # message once for every secret: this runs on every request of three receivers.
    candidates = [
        token[3:].encode("utf-8", "surrogatepass")
        for token in given.split(" ")
        if token.startswith("v1,")
    ]
    signed = f"{msg_id}.{timestamp}.".encode() + body
    for secret in each(secrets):
        expected = base64.b64encode(hmac_sha256(standard_key(secret), signed))
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return msg_id
    raise SignatureError("no webhook-signature matches")


# --- Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`` ---------------------------


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``{t}.{body}``, keyed with the ``whsec_…`` string itself."""
    return hmac_sha256(secret.encode(), f"{timestamp}.".encode() + body).hex()


def stripe_sign(secret: str, timestamp: int, body: bytes) -> str:
    """A ``Stripe-Signature`` header value, as Stripe sends it."""
    return f"t={timestamp},v1={stripe_signature(secret, timestamp, body)}"


def stripe_verify(secrets: Secrets, value: str, body: bytes, now: float, tolerance: float) -> None:
    """Any v1 may match any of our secrets (Stripe sends one v1 per secret while it rolls
    one; we may hold the new and the old); v0 and unknown schemes are ignored. The window is
    checked both ways, stricter than stripe-python, which only refuses old timestamps."""
    pairs = [item.strip().partition("=") for item in value.split(",")]
    timestamps = [text for name, _, text in pairs if name == "t"]
    candidates = [text for name, _, text in pairs if name == "v1" and text.isascii()]
    if not timestamps or not _unix_seconds(timestamps[0]):
        raise SignatureError("Stripe-Signature has no unix timestamp t=")
    if not candidates:
        raise SignatureError("Stripe-Signature has no v1 signature")
    timestamp = int(timestamps[0])
    expected = [stripe_signature(secret, timestamp, body) for secret in each(secrets)]
    if not any(any_equal(expected, candidate) for candidate in candidates):
        raise SignatureError("no v1 signature in Stripe-Signature matches")
    check_window(timestamp, now, tolerance)


# --- Typeform: ``Typeform-Signature: sha256=<base64 HMAC-SHA256(raw body)>``, no timestamp ---


def typeform_signature(secret: str, body: bytes) -> str:
    return "sha256=" + _b64(hmac_sha256(secret.encode(), body))


def typeform_verify(secrets: Secrets, value: str, body: bytes) -> None:
    if not any_equal((typeform_signature(secret, body) for secret in each(secrets)), value):
        raise SignatureError("Typeform-Signature does not match")


# --- Delighted: ``X-Delighted-Webhook-Signature: sha256=<hex HMAC-SHA256(raw body)>`` -------


def delighted_signature(api_key: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256(api_key.encode(), body).hex()


def delighted_verify(api_keys: Secrets, value: str, body: bytes) -> None:
    """The bare hex is accepted too: the prefix is documented by receivers' code, not by
    Delighted's page."""
    expected = [delighted_signature(api_key, body) for api_key in each(api_keys)]
    bare = [signature.removeprefix("sha256=") for signature in expected]
    if not any_equal(expected + bare, value):
        raise SignatureError("X-Delighted-Webhook-Signature does not match")


# --- HubSpot: signature v3 over method + URI + body + timestamp (milliseconds) --------------

# HubSpot's documented table: only these escapes are decoded before hashing the URI.
HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def hubspot_signed_uri(url: str) -> str:
    """The URI as HubSpot hashes it: the table's escapes decoded, every other one kept."""
    return _ESCAPE.sub(lambda m: HUBSPOT_DECODED.get(m.group(0).upper(), m.group(0)), url)


def hubspot_signature(
    client_secret: str, method: str, url: str, body: bytes, timestamp: str
) -> str:
    """``X-HubSpot-Signature-v3`` for a request to ``url`` (see ``hubspot_signed_uri``)."""
    message = method.encode() + hubspot_signed_uri(url).encode() + body + timestamp.encode()
    return _b64(hmac_sha256(client_secret.encode(), message))


def hubspot_sign(
    client_secret: str, method: str, url: str, body: bytes, now: int
) -> dict[str, str]:
    """The two headers HubSpot sends, signed at ``now`` (seconds; the header is in ms)."""
    timestamp = str(now * 1000)
    return {
        "x-hubspot-request-timestamp": timestamp,
        "x-hubspot-signature-v3": hubspot_signature(client_secret, method, url, body, timestamp),
    }


def hubspot_verify(
    client_secrets: Secrets,
    headers: Mapping[str, str],
    method: str,
    url: str,
    body: bytes,
    now: float,
    tolerance: float,
) -> None:
    """``url`` is the one HubSpot called: behind a proxy, the one registered with HubSpot. The
    SDKs refuse only old timestamps; this refuses future ones too."""
    given = headers.get("x-hubspot-signature-v3")
    timestamp = headers.get("x-hubspot-request-timestamp")
    if not (given and timestamp):
        raise SignatureError("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        raise SignatureError("X-HubSpot-Request-Timestamp is not a time in milliseconds")
    check_window(int(timestamp) / 1000, now, tolerance)
    expected = (
        hubspot_signature(secret, method.upper(), url, body, timestamp)
        for secret in each(client_secrets)
    )
    if not any_equal(expected, given):
        raise SignatureError("X-HubSpot-Signature-v3 does not match")


# --- HTTP Basic auth (Chargebee signs nothing; its webhook URL carries Basic credentials) ---


def basic_authorization(username: str, password: str) -> str:
    """An ``Authorization`` header value, as Chargebee sends it."""
    return "Basic " + _b64(f"{username}:{password}".encode())


def basic_verify(logins: Iterable[tuple[str, str]], value: str) -> None:
    """``logins``: the (username, password) pairs accepted, several while they are rotated."""
    logins = list(logins)
    if not logins:
        raise SignatureError("there are no credentials to verify with")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise SignatureError("missing Basic Authorization header")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError as error:  # binascii.Error and UnicodeDecodeError both are
        raise SignatureError("the Authorization header is not Basic credentials") from error
    given_user, colon, given_password = decoded.partition(":")
    # Both are compared, always and for every pair, so that timing does not tell which one
    # was wrong.
    matches = [
        equal(username, given_user) & equal(password, given_password)
        for username, password in logins
    ]
    if not (colon and any(matches)):
        raise SignatureError("the Basic credentials do not match")
