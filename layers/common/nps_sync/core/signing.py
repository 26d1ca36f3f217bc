"""HMAC signature schemes: pure functions, each ``verify`` with a ``sign`` twin for tests.

Every comparison is constant-time (hmac.compare_digest). Providers differ in what they sign,
how they encode it and what ``whsec_`` means, so each scheme is spelled out rather than shared.
"""

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from nps_sync.core.errors import SignatureError


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def equal(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def check_window(timestamp: float, now: float, tolerance: float, *, future: bool = True) -> None:
    """Refuse a signed timestamp outside the replay window (and, by default, in the future)."""
    if timestamp < now - tolerance:
        raise SignatureError("signature timestamp is too old")
    if future and timestamp > now + tolerance:
        raise SignatureError("signature timestamp is in the future")


# --- Standard Webhooks (Formbricks, our generic receivers, our own outgoing deliveries) ---

STANDARD_PREFIX = "whsec_"


def standard_key(secret: str) -> bytes:
    """Standard Webhooks keys are base64 after the ``whsec_`` prefix (unlike Stripe's)."""
    raw = secret.removeprefix(STANDARD_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError as error:
        raise SignatureError("signing secret is not valid base64") from error


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac_sha256(standard_key(secret), signed)).decode()


def standard_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, msg_id, timestamp, body),
    }


def standard_verify(
    secrets: Iterable[str],
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
    if not (timestamp.isascii() and timestamp.isdecimal()) or len(timestamp) > 12:
        raise SignatureError("webhook-timestamp is not a unix timestamp")
    check_window(int(timestamp), now, tolerance)
    candidates = [token.split(",", 1)[1] for token in given.split(" ") if token.startswith("v1,")]
    for secret in secrets:
        expected = standard_signature(secret, msg_id, timestamp, body).split(",", 1)[1]
        if any(equal(expected, candidate) for candidate in candidates):
            return msg_id
    raise SignatureError("no webhook-signature matches")
