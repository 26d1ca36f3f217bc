"""Sign a request body the way each provider does, with the credentials of the secrets file.

Used by the demo data, events/ and the tests: the receivers under test never see a request
that a real provider could not have sent. The formulas are the receivers' own
(nps_sync.core.signing), so the two cannot drift apart.
"""

import hashlib
import json
import time
from pathlib import Path

from nps_sync.core.signing import (
    basic_authorization,
    delighted_signature,
    hubspot_sign,
    standard_sign,
    stripe_sign,
    typeform_signature,
)

DEV_SECRETS = Path(__file__).resolve().parent / "dev-secrets.json"


def credentials(provider: str, secrets_file: Path = DEV_SECRETS) -> dict:
    return json.loads(secrets_file.read_text())["providers"][provider]


def newest(secret: str | list[str]) -> str:
    """A secret listed while it is rotated (README "Secrets") signs with its first entry."""
    return secret[0] if isinstance(secret, list) else secret


def signed_headers(
    provider: str, body: bytes, creds: dict | None = None, now: int | None = None, url: str = ""
) -> dict[str, str]:
    """Salesforce signs nothing (its token travels in the URL); HubSpot signs the URL."""
    creds = creds if creds is not None else credentials(provider)
    now = int(time.time()) if now is None else now
    headers = {"content-type": "application/json"}
    if provider == "typeform":
        headers["typeform-signature"] = typeform_signature(newest(creds["secret"]), body)
    elif provider == "delighted":
        signature = delighted_signature(newest(creds["secret"]), body)
        headers["x-delighted-webhook-signature"] = signature
    elif provider in ("formbricks", "generic"):
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]  # an id, not a signature
        headers.update(standard_sign(newest(creds["secret"]), msg_id, now, body))
    elif provider == "stripe":
        headers["stripe-signature"] = stripe_sign(newest(creds["secret"]), now, body)
    elif provider == "chargebee":
        login = creds if "username" in creds else creds["logins"][0]
        headers["authorization"] = basic_authorization(login["username"], login["password"])
    elif provider == "hubspot":
        headers.update(hubspot_sign(newest(creds["client_secret"]), "POST", url, body, now))
    elif provider == "salesforce":
        headers["content-type"] = "text/xml; charset=utf-8"
        headers["soapaction"] = '""'
    else:
        raise ValueError(f"no signer for provider {provider!r}")
    return headers


def signed_sample(kind: str, path: Path, now: int | None = None):
    """A sample body of events/bodies/<kind>/ as its provider sends it: (provider, credentials,
    now, WebhookRequest); JSON bodies compacted, as providers send them. For the pinned
    adapter outputs and the adapters' bench alike."""
    from nps_sync.ingest.receive import WebhookRequest

    provider = path.stem.split("-")[0].split(".")[0]
    body = path.read_bytes()
    if path.suffix == ".json":
        body = json.dumps(json.loads(body), separators=(",", ":")).encode()
    creds = credentials(provider)
    url = f"https://api.example.com/webhooks/{kind}/{provider}"
    if provider == "salesforce":
        url += f"?token={creds['token']}"
    now = int(time.time()) if now is None else now
    request = WebhookRequest(
        body=body,
        headers=signed_headers(provider, body, now=now, url=url),
        url=url,
        query={"token": creds.get("token", "")},
    )
    return provider, creds, now, request
