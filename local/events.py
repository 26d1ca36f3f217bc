"""``python -m local.events``: write events/<kind>/<provider>.json from events/bodies/.

Each is an API Gateway HTTP API (2.0) event, signed with local/dev-secrets.json, that
``sam local invoke <Function> -e events/<kind>/<provider>.json`` accepts. Standard Webhooks
signatures carry a timestamp and expire after 5 minutes: run ``make events`` right before.
"""

import json
import sys

from .gateway import api_event
from .signer import signed_headers
from .template import ROOT, Route

KINDS = {"survey": "SurveyWebhookFunction"}


def build(kind: str, provider: str, body: bytes) -> dict:
    headers = {
        **signed_headers(provider, body),
        "host": "api.example.com",
        "user-agent": f"{provider}-webhooks",
    }
    route = Route("POST", f"/webhooks/{kind}/{{provider}}", KINDS[kind])
    return api_event(
        "POST",
        f"/webhooks/{kind}/{provider}",
        headers,
        body,
        route,
        {"provider": provider},
        "api.example.com",
        "192.0.2.10",
    )


def main() -> int:
    for kind in KINDS:
        for path in sorted((ROOT / "events" / "bodies" / kind).glob("*.json")):
            body = json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode()
            out = ROOT / "events" / kind / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(build(kind, path.stem, body), indent=2) + "\n")
            print(out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
