"""Sign a request body the way each provider does, with the credentials of the secrets file.

Used by the demo data, events/ and the tests: the receivers under test never see a request
that a real provider could not have sent.
"""

import base64
import hashlib
import json
import time
from pathlib import Path

from nps_sync.core.signing import hmac_sha256, standard_sign

DEV_SECRETS = Path(__file__).resolve().parent / "dev-secrets.json"


def credentials(provider: str, secrets_file: Path = DEV_SECRETS) -> dict:
    return json.loads(secrets_file.read_text())["providers"][provider]


def signed_headers(
    provider: str, body: bytes, creds: dict | None = None, now: int | None = None, url: str = ""
) -> dict[str, str]:
    """Salesforce signs nothing (its token travels in the URL); HubSpot signs the URL."""
    creds = creds if creds is not None else credentials(provider)
    now = int(time.time()) if now is None else now
    headers = {"content-type": "application/json"}
    if provider == "typeform":
        digest = base64.b64encode(hmac_sha256(creds["secret"].encode(), body)).decode()
        headers["typeform-signature"] = f"sha256={digest}"
    elif provider == "delighted":
        headers["x-delighted-webhook-signature"] = (
            "sha256=" + hmac_sha256(creds["secret"].encode(), body).hex()
        )
    elif provider in ("formbricks", "generic"):
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]
        headers.update(standard_sign(creds["secret"], msg_id, now, body))
    elif provider == "stripe":
        digest = hmac_sha256(creds["secret"].encode(), f"{now}.".encode() + body).hex()
        headers["stripe-signature"] = f"t={now},v1={digest}"
    elif provider == "chargebee":
        pair = f"{creds['username']}:{creds['password']}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif provider == "hubspot":
        timestamp = str(now * 1000)
        source = f"POST{url}".encode() + body + timestamp.encode()
        headers["x-hubspot-request-timestamp"] = timestamp
        headers["x-hubspot-signature-v3"] = base64.b64encode(
            hmac_sha256(creds["client_secret"].encode(), source)
        ).decode()
    elif provider == "salesforce":
        headers["content-type"] = "text/xml; charset=utf-8"
        headers["soapaction"] = '""'
    else:
        raise ValueError(f"no signer for provider {provider!r}")
    return headers
