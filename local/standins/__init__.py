"""Local stand-ins of the providers' HTTP APIs we call, for tests and ``make run``.

Each module offers ``local(credentials, port)`` (the stand-in accepting the dev credentials of
``local/dev-secrets.json`` ``destinations.<kind>-dev``), and its stand-in ``populate(customers)``
(the demo data's customers and accounts) and ``fields_of(email)`` (what was written)."""

import importlib
import os
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


def register() -> list[str]:
    """One destination per stand-in, as POST /destinations and its test call make them (the
    test call creates HubSpot's properties), in the runtime's process, so that no request
    line interleaves with the start-up lines: demo data writes back as it loads."""
    from nps_sync.destinations import clients
    from nps_sync.store.destinations import DestinationsStore

    store = DestinationsStore(os.environ["SUBSCRIPTIONS_TABLE"])
    lines = []
    for kind in KINDS:
        created = store.create(kind, f"{kind}-dev", {}, False, 90, {})
        check = clients.check(created)
        state = "ready" if check.ok else f"not ready: {check.message}"
        if check.created:
            state += f" (created {len(check.created)} fields)"
        lines.append(f"{kind} destination {created.id} {state}")
    return lines
