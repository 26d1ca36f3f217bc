"""``python -m local.events``: write events/<kind>/<name>.json from events/bodies/<kind>/.

Each is an API Gateway HTTP API (2.0) event, signed with local/dev-secrets.json, that
``sam local invoke <Function> -e events/<kind>/<name>.json`` accepts. A body file is named
``<provider>[-<what>].json`` (or ``.xml``). Signatures with a timestamp (Standard Webhooks,
Stripe, HubSpot) expire after 5 minutes: run ``make events`` right before invoking.
"""

import json
import sys
from pathlib import Path

from .gateway import api_event
from .signer import credentials, signed_headers
from .template import ROOT, Route

KINDS = {
    "survey": "SurveyWebhookFunction",
    "crm": "CrmWebhookFunction",
    "billing": "BillingWebhookFunction",
}
HOST = "api.example.com"


def provider_of(path: Path) -> str:
    return path.stem.split("-", 1)[0]


def wire_body(path: Path) -> bytes:
    """A sample body as a provider sends it: compact JSON, XML as written."""
    if path.suffix == ".json":
        return json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode()
    return path.read_bytes()


def target(kind: str, provider: str) -> str:
    path = f"/webhooks/{kind}/{provider}"
    if provider == "salesforce":  # Salesforce signs nothing: the endpoint URL carries a token
        path += f"?token={credentials('salesforce')['token']}"
    return path


def build(kind: str, provider: str, body: bytes) -> dict:
    path = target(kind, provider)
    headers = {
        **signed_headers(provider, body, url=f"https://{HOST}{path}"),
        "host": HOST,
        "user-agent": f"{provider}-webhooks",
    }
    route = Route("POST", f"/webhooks/{kind}/{{provider}}", KINDS[kind])
    return api_event("POST", path, headers, body, route, {"provider": provider}, HOST, "192.0.2.10")


def main() -> int:
    for kind in KINDS:
        for path in sorted((ROOT / "events" / "bodies" / kind).glob("*.*")):
            out = ROOT / "events" / kind / f"{path.stem}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            event = build(kind, provider_of(path), wire_body(path))
            out.write_text(json.dumps(event, indent=2) + "\n")
            print(out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
