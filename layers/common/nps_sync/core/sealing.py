"""Sealed tokens (AES-256-GCM): what the API hands out only to be given back, such as the
at-risk listing's cursor, can be neither read nor altered by whoever holds it or logs its URL.

Needs ``cryptography``, which ApiFunction alone packages (functions/api/requirements.txt):
import this module only from code that runs there (docs/decisions.md).
"""

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16


def seal(key: bytes, plaintext: bytes, context: bytes) -> str:
    """URL-safe base64 of nonce + ciphertext + tag; ``context`` is authenticated, not sent, so
    a token opens only where it was sealed for."""
    nonce = os.urandom(NONCE_BYTES)
    return _text(nonce + AESGCM(key).encrypt(nonce, plaintext, context))


def unseal(key: bytes, token: str, context: bytes) -> bytes:
    """The plaintext; ValueError for anything ``seal`` did not make with this key and context
    (forged, altered, truncated, another context's)."""
    raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    if _text(raw) != token:  # base64 has spare bits: one token per sealed value, no other
        raise ValueError("not the text seal writes")
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise ValueError("too short to be sealed")
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
    except InvalidTag as error:
        raise ValueError("not sealed with this key for this context") from error


def _text(sealed: bytes) -> str:
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")
