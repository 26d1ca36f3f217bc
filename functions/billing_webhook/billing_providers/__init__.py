"""Billing adapters: each module has ``verify`` and ``parse``
(nps_sync.ingest.receive), imported when a request names it (receive.Adapters)."""

from nps_sync.ingest.receive import Adapters

ADAPTERS = Adapters(__name__, ("stripe", "chargebee", "generic"))
