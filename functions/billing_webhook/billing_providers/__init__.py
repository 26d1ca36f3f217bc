"""Billing adapters: each module has ``verify`` and ``parse`` (see nps_sync.ingest.receive)."""

from . import chargebee, generic, stripe

ADAPTERS = {
    "stripe": stripe,
    "chargebee": chargebee,
    "generic": generic,
}
