"""CRM adapters: each module has ``verify`` and ``parse`` (see nps_sync.ingest.receive)."""

from . import generic, hubspot, salesforce

ADAPTERS = {
    "hubspot": hubspot,
    "salesforce": salesforce,
    "generic": generic,
}
