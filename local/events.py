"""``python -m local.events``: write events/<kind>/<name>.json from events/bodies/<kind>/.

Each is an API Gateway HTTP API (2.0) event, signed with local/dev-secrets.json (or
``--secrets FILE``), that ``sam local invoke <Function> -e events/<kind>/<name>.json`` accepts.
A body file is named ``<provider>[-<what>].json`` (or ``.xml``). Signatures with a timestamp
(Standard Webhooks, Stripe, HubSpot) expire after 5 minutes: run ``make events`` right before
invoking.

``--stack NAME`` also fills events/env.json (``sam local invoke --env-vars``) from that
stack's outputs: SAM hands a function only variables the template declares, so in its
container the function reads the secret and the table of a real stack (README "Deploy").
"""

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .gateway import api_event
from .signer import DEV_SECRETS, credentials, signed_headers
from .template import ROOT, Route

KINDS = {
    "survey": "SurveyWebhookFunction",
    "crm": "CrmWebhookFunction",
    "billing": "BillingWebhookFunction",
}
HOST = "api.example.com"
ENV_FILE = ROOT / "events" / "env.json"
# What `sam local invoke --env-vars` may set: only variables the template declares. The CRM
# receiver would queue HubSpot reads; under `sam local invoke` there is nothing to read them.
STACK_OUTPUTS = {"RECORDS_TABLE": "RecordsTableName", "SECRETS_PARAMETER": "SecretsParameter"}
EXTRA = {"CrmWebhookFunction": {"CRM_ENRICHMENT_QUEUE": "", "HUBSPOT_API_URL": ""}}


def provider_of(path: Path) -> str:
    return path.stem.split("-", 1)[0]


def wire_body(path: Path) -> bytes:
    """A sample body as a provider sends it: compact JSON, XML as written."""
    if path.suffix == ".json":
        return json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode()
    return path.read_bytes()


def target(kind: str, provider: str, secrets_file: Path = DEV_SECRETS) -> str:
    path = f"/webhooks/{kind}/{provider}"
    if provider == "salesforce":  # Salesforce signs nothing: the endpoint URL carries a token
        path += f"?token={credentials('salesforce', secrets_file)['token']}"
    return path


def build(
    kind: str,
    provider: str,
    body: bytes,
    now: int | None = None,
    secrets_file: Path = DEV_SECRETS,
) -> dict:
    """The event as API Gateway would pass it, signed at ``now`` (and received then)."""
    now = int(time.time()) if now is None else now
    path = target(kind, provider, secrets_file)
    creds = credentials(provider, secrets_file)
    headers = {
        **signed_headers(provider, body, creds=creds, now=now, url=f"https://{HOST}{path}"),
        "host": HOST,
        "user-agent": f"{provider}-webhooks",
    }
    route = Route("POST", f"/webhooks/{kind}/{{provider}}", KINDS[kind])
    event = api_event(
        "POST", path, headers, body, route, {"provider": provider}, HOST, "192.0.2.10"
    )
    received = datetime.fromtimestamp(now, UTC)
    event["requestContext"].update(
        time=received.strftime("%d/%b/%Y:%H:%M:%S +0000"), timeEpoch=now * 1000
    )
    return event


def environment(outputs: dict[str, str]) -> dict[str, dict[str, str]]:
    """events/env.json: per function, the template variables pointing at a stack."""
    common = {name: outputs[output] for name, output in STACK_OUTPUTS.items()}
    return {function: {**common, **EXTRA.get(function, {})} for function in KINDS.values()}


def stack_outputs(stack: str, cloudformation: Any = None) -> dict[str, str]:
    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation")
    (found,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    missing = [name for name in STACK_OUTPUTS.values() if name not in outputs]
    if missing:
        raise SystemExit(f"stack {stack} has no output {', '.join(missing)}")
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.events", description=__doc__)
    parser.add_argument("--secrets", type=Path, default=DEV_SECRETS, help="sign with these")
    parser.add_argument("--stack", help="write events/env.json for this deployed stack")
    args = parser.parse_args(argv)
    now = int(time.time())
    for kind in KINDS:
        for path in sorted((ROOT / "events" / "bodies" / kind).glob("*.*")):
            out = ROOT / "events" / kind / f"{path.stem}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            event = build(kind, provider_of(path), wire_body(path), now, args.secrets)
            out.write_text(json.dumps(event, indent=2) + "\n")
            print(out.relative_to(ROOT))
    if args.stack:
        ENV_FILE.write_text(json.dumps(environment(stack_outputs(args.stack)), indent=2) + "\n")
        print(ENV_FILE.relative_to(ROOT), f"(stack {args.stack})")
    print(f"signed at {now}: Standard Webhooks, Stripe and HubSpot events expire in 5 minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
