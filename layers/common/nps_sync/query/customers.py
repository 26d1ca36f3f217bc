"""GET /customers/{key} (one customer's view) and DELETE /customers/{key} (erasure).

Erasure deletes every item under each pk the by_customer index names for the customer and for
every alias and provider id linked to it, or named by its records (responses, provider
profiles, identity links, each with its RAW# payloads), then everything under CUST#<key> of
each. The key is read as identity reads keys (``Ana@Example.com`` is ``ana@example.com``), and
an alias (a customer id, ``stripe:cus_…``) erases the customer it is linked to. It runs as a
resumable job (store.records.Erasures): the request does a bounded part (REQUEST_CALLS), a
queue message the rest. Each erased response leaves a tombstone, so a provider's re-delivery
does not store it again. The aggregates and the at-risk index follow through the stream's
REMOVE records.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nps_sync.core import identity
from nps_sync.core.errors import NotFound
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.items import plain, stored_response, text
from nps_sync.store.links import Links
from nps_sync.store.records import ErasureProgress, Erasures

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
    under_way = Erasures(records.table_name, records.client).status(customer_key)
    if under_way is not None:  # what is left is going: say so, show none of it
        return {"customer_key": customer_key, "erasure": _erasure(under_way)}
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


# DynamoDB calls an erasure's request may spend on the job itself (store.records.Erasures:
# ~1.1 per record); the rest goes to the queue. Measured with the rest of the request's calls
# in tests/integration/test_erasure_large.py (docs/identity.md "Erasure").
REQUEST_CALLS = 30
QUEUE_CALLS = 2000  # per continuation message (CrmEnrichFunction, 30 s timeout)
IDENTITY_PREFIXES = ("ID#", "PROF#")


def erasure_keys(records: CustomerRecords, key: str) -> list[str]:
    """The customer keys a request names, the customer first: the key as identity normalizes
    it, preceded by the customer its link points to when it is an alias (an erasure takes
    both: records that arrived under an alias just before its link are not moved yet)."""
    normalized = identity.customer_key(email=key, customer_id=key)
    if normalized is None:
        return []
    return list(dict.fromkeys([Links(records).resolve(normalized, []), normalized]))


@dataclass(frozen=True)
class ErasurePlan:
    """What an erasure starts from: the customer keys (the customer first, then every alias
    and provider id linked to it, three steps deep) and their identity items (links and
    provider profiles, what the destinations' clearing needs), read before anything is
    deleted. Two Queries per key (``ID#`` and ``PROF#`` entries only, never the responses)."""

    keys: list[str]
    items: list[dict[str, Any]]


def erasure_plan(records: CustomerRecords, key: str) -> ErasurePlan:
    keys = erasure_keys(records, key)
    items: list[dict[str, Any]] = []
    todo, seen = list(keys), set(keys)
    for _ in range(4):  # the customer, then links followed at most three steps
        found = []
        for customer_key in todo:
            for prefix in IDENTITY_PREFIXES:
                for item in records.by_customer(customer_key, prefix):
                    items.append(item)
                    index_key = text(item, "gsi1sk") or ""
                    if index_key.startswith("ID#"):
                        found.append(index_key.removeprefix("ID#"))
        todo = [alias for alias in dict.fromkeys(found) if alias not in seen]
        seen.update(todo)
        keys.extend(todo)
        if not todo:
            break
    return ErasurePlan(keys, items)


def erase(
    records: CustomerRecords,
    key: str,
    continue_later: Callable[[str], Any] | None = None,
    plan: ErasurePlan | None = None,
    max_calls: int = REQUEST_CALLS,
) -> ErasureProgress | None:
    """Erase the customer: a part of it here (``max_calls``), the rest through
    ``continue_later(job)`` (a queue message), or all of it here without one. None when
    the request names no key at all."""
    plan = plan or erasure_plan(records, key)
    if not plan.keys:
        return None
    erasures = Erasures(records.table_name, records.client)
    job = erasures.start(plan.keys)
    progress = erasures.run(job, max_calls if continue_later else 10**12)
    if not progress.complete and continue_later is not None:
        continue_later(job)
    return progress


def erase_customer(
    records: CustomerRecords,
    key: str,
    continue_later: Callable[[str], Any] | None = None,
    plan: ErasurePlan | None = None,
) -> dict[str, Any]:
    """DELETE /customers/{key}: the erasure's state (complete or continuing from the queue,
    counts so far), or NotFound (404) when nothing was stored under the key."""
    progress = erase(records, key, continue_later, plan)
    if progress is None or (progress.complete and not any(progress.deleted.values())):
        raise NotFound("no such customer")
    return _erasure(progress)


def continue_erasure(records: CustomerRecords, job: str, continue_later: Callable[[str], Any]):
    """A continuation message: QUEUE_CALLS more of the job, and another message while it is
    not complete. A failure leaves the message to be received again: the job goes on from its
    last applied page."""
    progress = Erasures(records.table_name, records.client).run(job, QUEUE_CALLS)
    if not progress.complete:
        continue_later(job)
    return progress


def _erasure(progress: ErasureProgress) -> dict[str, Any]:
    return {"complete": progress.complete, "deleted": dict(progress.deleted)}
