"""Local stand-ins of the providers' HTTP APIs we call, for tests and ``make run``.

Each module offers ``local(credentials, port)`` (the stand-in accepting the dev credentials of
``local/dev-secrets.json`` ``destinations.<kind>-dev``), and its stand-in ``populate(customers)``
(the demo data's customers and accounts) and ``fields_of(email)`` (what was written)."""

import importlib
from typing import Any

# kind -> the settings that name its base URL (HubSpot is read for ingest and written to)
URL_SETTINGS = {
    "hubspot": ("HUBSPOT_API_URL", "HUBSPOT_DESTINATION_URL"),
    "salesforce": ("SALESFORCE_URL",),
    "stripe": ("STRIPE_URL",),
    "chargebee": ("CHARGEBEE_URL",),
}
KINDS = tuple(URL_SETTINGS)


def start_all(destinations: dict[str, dict], customers: list[dict]) -> dict[str, Any]:
    """Every stand-in started and populated; ``destinations``: the secrets' destinations."""
    started: dict[str, Any] = {}
    try:
        for kind in KINDS:
            module: Any = importlib.import_module(f"local.standins.{kind}")
            standin = module.local(destinations[f"{kind}-dev"])
            standin.populate(customers)
            standin.start()
            started[kind] = standin
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(started: dict[str, Any]) -> None:
    for standin in started.values():
        standin.stop()


def register(api_url: str, token: str) -> list[str]:
    """One destination per stand-in through the API (POST /destinations, then its test call,
    which creates HubSpot's properties): demo data writes back as it loads. Lines to print."""
    import json
    import urllib.request

    def call(method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the local runtime's own URL
            api_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read() or b"null")

    lines = []
    for kind in KINDS:
        created = call("POST", "/destinations", {"kind": kind, "credentials": f"{kind}-dev"})
        check = call("POST", f"/destinations/{created['id']}/test")
        state = "ready" if check.get("ok") else f"not ready: {check.get('message', '')}"
        if check.get("created"):
            state += f" (created {len(check['created'])} fields)"
        lines.append(f"{kind} destination {created['id']} {state}")
    return lines
