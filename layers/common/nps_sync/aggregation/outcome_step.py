"""The aggregator's revenue-outcome step for one stream batch (docs/outcomes.md):

1. outcome counters: deltas of the batch's PROFILE images, folded per key and applied with
   this shard's marks, exactly once (the protocol of docs/aggregation.md);
2. outcome state and at-risk keys: for every customer whose responses or billing inputs
   changed, ``outcome`` (and the keys of the sparse at-risk indexes) are derived again from the
   records and written onto the PROFILE when they differ. That write comes back as a PROFILE
   MODIFY, which moves the counters in step 1 of a later batch.

Work that fails is reported from the first record it belongs to, like the NPS aggregates.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from nps_sync.aggregation.stream import Change, Lane
from nps_sync.core.aggregates import is_response
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.core.outcomes import (
    AT_RISK_ATTRIBUTES,
    BILLING_STAMP,
    apply_key,
    at_risk_attributes,
    customer_of,
    derive,
    fold,
    is_billing_profile,
    stored_at_risk,
    stored_state,
    to_attribute,
)
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.outcomes import OutcomesStore

# PROFILE attributes the outcome state and at-risk keys are derived from (and the responses).
INPUTS = (BILLING_STAMP, "status", "churned_at", "renewed_at", "mrr_amount")


class Failures(Protocol):
    writes: int

    def fail(self, index: int) -> None: ...


def _customer(image: Mapping[str, Any] | None) -> str | None:
    value = (image or {}).get("customer_key", {})
    return value.get("S")


def _updated(image: Mapping[str, Any] | None) -> str:
    return ((image or {}).get("updated_at") or {}).get("S", "")


def affected(batch: Iterable[Change]) -> dict[str, int]:
    """Customers whose outcome state may have changed -> index of their first record."""
    found: dict[str, int] = {}
    for change in batch:
        if is_response(change.old) or is_response(change.new):
            customers = {_customer(change.old), _customer(change.new)} - {None}
        elif is_billing_profile(change.new):
            old = change.old or {}
            changed = any(old.get(n) != change.new.get(n) for n in INPUTS)
            customers = {customer_of(change.new)} if changed else set()
        else:
            customers = set()
        for customer in customers:
            found.setdefault(customer, change.index)
    return found


def merge(customer: str, queried: list[Mapping[str, Any]], batch: list[Change]) -> list[Any]:
    """The customer's responses: the index's answer (eventually consistent), corrected by the
    batch's own images where those are newer than what the index returned."""
    by_pk = {item["pk"]["S"]: item for item in queried}
    last: dict[str, Change] = {}
    for change in batch:
        if is_response(change.old) or is_response(change.new):
            last[change.pk] = change
    for pk, change in last.items():
        seen = by_pk.get(pk)
        if _customer(change.new) == customer:
            if seen is None or _updated(seen) < _updated(change.new):
                by_pk[pk] = change.new
        elif seen is not None and _updated(seen) <= _updated(change.old):
            del by_pk[pk]  # erased, or moved to another customer, after the index answered
    return list(by_pk.values())


class OutcomeStep:
    def __init__(self, store: OutcomesStore, records: CustomerRecords, dimensions: Iterable[str]):
        self.store = store
        self.records = records
        self.dimensions = tuple(dimensions)

    def run(
        self,
        batch: list[Change],
        lane: Lane,
        result: Failures,
        responses: Callable[[str], list[Mapping[str, Any]]] | None = None,
    ) -> None:
        """``responses``: a customer's response items (the aggregator shares one per batch)."""
        self._count(batch, lane, result)
        self._derive(batch, result, responses or (lambda c: self.records.by_customer(c, "RESP#")))

    def _count(self, batch: list[Change], lane: Lane, result: Failures) -> None:
        pending = fold(((c.index, c.sequence, c.old, c.new) for c in batch), self.dimensions)
        for key_pending in pending.values():
            try:
                result.writes += apply_key(self.store, key_pending, lane.shard_id, lane.ancestors)
            except StorageUnavailable:
                logger.warning("outcome write failed", extra={"index": key_pending.first_index})
                result.fail(key_pending.first_index)

    def _derive(
        self,
        batch: list[Change],
        result: Failures,
        responses: Callable[[str], list[Mapping[str, Any]]],
    ) -> None:
        customers = affected(batch)
        if not customers:
            return
        try:
            profiles = self.records.profiles(customers)
        except StorageUnavailable:
            result.fail(min(customers.values()))
            return
        for customer, profile in profiles.items():
            if not is_billing_profile(profile):
                continue
            try:
                queried = responses(customer)
                state = derive(profile, merge(customer, queried, batch))
                keys = at_risk_attributes(profile, state)
                if state != stored_state(profile) or keys != stored_at_risk(profile):
                    derived = {name: keys.get(name) for name in AT_RISK_ATTRIBUTES}
                    self.records.set_outcome(
                        customer, to_attribute(state), profile[BILLING_STAMP], derived
                    )
            except StorageUnavailable:
                result.fail(customers[customer])
