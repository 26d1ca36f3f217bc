"""GET /customers/{key} (one customer's view) and DELETE /customers/{key} (erasure).

Erasure deletes every item under each pk the by_customer index names for the customer
(responses, provider profiles, identity links, each with its RAW# payloads) and everything
under CUST#<key>. The key is read as identity reads keys (``Ana@Example.com`` is
``ana@example.com``), and an alias (a customer id, ``stripe:cus_…``) erases the customer it is
linked to. The aggregates and the at-risk index follow through the stream's REMOVE records.
"""

from collections.abc import Mapping
from typing import Any

from nps_sync.core import identity
from nps_sync.core.errors import NotFound
from nps_sync.store.customers import CustomerRecords, customer_pk
from nps_sync.store.items import item_key, plain, stored_response, text
from nps_sync.store.links import Links

HIDDEN = {"pk", "sk", "gsi1pk", "gsi1sk", "raw", "type", "content_hash"}


def view(item: Mapping[str, Any]) -> dict[str, Any]:
    """A whole item as the API shows it. Not boto3's TypeDeserializer: its Decimals and sets
    would need converting again, and a number set would sort by value, not as shown so far."""
    return {
        name: plain(value)
        for name, value in item.items()
        if name not in HIDDEN and "B" not in value and "BS" not in value
    }


def customer_view(records: CustomerRecords, key: str) -> dict[str, Any]:
    keys = erasure_keys(records, key)
    if not keys:
        raise NotFound("no such customer")
    customer_key = keys[0]
    profile = records.profile(customer_key)
    indexed = records.by_customer(customer_key)
    answers = sorted(
        (r for r in map(stored_response, indexed) if r is not None),
        key=lambda r: (r.submitted_at or "", r.response_id or ""),
    )
    profiles = [view(i) for i in indexed if (text(i, "gsi1sk") or "").startswith("PROF#")]
    if profile is None and not answers and not profiles:
        raise NotFound("no such customer")
    latest = answers[-1] if answers else None
    return {
        "customer_key": customer_key,
        "profile": view(profile) if profile else None,
        "provider_profiles": profiles,
        "responses": [view(r.item) for r in answers],
        "latest": (
            {
                "score": latest.score,
                "category": latest.category,
                "submitted_at": latest.submitted_at,
                "provider": latest.provider,
                "response_id": latest.response_id,
            }
            if latest
            else None
        ),
    }


KINDS = {"RESP#": "responses", "PROF#": "provider_profiles", "ID#": "identity_links"}


def erasure_keys(records: CustomerRecords, key: str) -> list[str]:
    """The customer keys a request names, the customer first: the key as identity normalizes
    it, preceded by the customer its link points to when it is an alias (an erasure takes
    both: records that arrived under an alias just before its link are not moved yet)."""
    normalized = identity.customer_key(email=key, customer_id=key)
    if normalized is None:
        return []
    return list(dict.fromkeys([Links(records).resolve(normalized, []), normalized]))


def erase(records: CustomerRecords, key: str) -> dict[str, int]:
    """Delete everything stored about the customer; counts per kind (0s when nothing known)."""
    counts = dict.fromkeys((*KINDS.values(), "raw_payloads", "profile_items"), 0)
    keys: list[dict[str, Any]] = []
    for customer_key in erasure_keys(records, key):
        keys.extend(_customer_items(records, customer_key, counts))
    unique = {item_key(k): k for k in keys}
    records.delete(list(unique.values()))
    return counts


def erase_customer(records: CustomerRecords, key: str) -> dict[str, int]:
    """DELETE /customers/{key}: erase, or NotFound (404) when nothing was stored under it."""
    deleted = erase(records, key)
    if not any(deleted.values()):
        raise NotFound("no such customer")
    return deleted


def _customer_items(
    records: CustomerRecords, customer_key: str, counts: dict[str, int]
) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    for item in records.by_customer(customer_key):
        pk, sk = item_key(item)
        index_key = text(item, "gsi1sk") or ""
        kind = next((v for k, v in KINDS.items() if index_key.startswith(k)), None)
        for stored in records.partition(pk):
            stored_sk = item_key(stored)[1]
            if stored_sk.startswith("RAW#"):
                counts["raw_payloads"] += 1
            elif kind is not None and stored_sk == sk:
                counts[kind] += 1
            keys.append(stored)
    for stored in records.partition(customer_pk(customer_key)):
        counts["profile_items"] += 1
        keys.append(stored)
    return keys
