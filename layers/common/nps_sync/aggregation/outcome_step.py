"""The aggregator's revenue-outcome step for one stream batch (docs/outcomes.md):

1. outcome counters: deltas of the batch's PROFILE images, folded per key and applied with
   this shard's marks, exactly once (the protocol of docs/aggregation.md);
2. outcome state and at-risk keys: for every customer whose responses or billing inputs
   changed, ``outcome`` (and the keys of the sparse at-risk indexes) are derived again from the
   records and written onto the PROFILE when they differ. That write comes back as a PROFILE
   MODIFY, which moves the counters in step 1 of a later batch.

Work that fails is reported from the first record it belongs to, like the NPS aggregates.
"""

import time
from collections.abc import Callable, Iterable

from nps_sync.aggregation.keys import Failures, write_keys
from nps_sync.aggregation.stream import Change, Lane
from nps_sync.core.aggregates import Pending
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.models import StoredResponse
from nps_sync.core.outcomes import (
    AT_RISK_ATTRIBUTES,
    BILLING_STAMP,
    apply_key,
    at_risk_attributes,
    derive,
    fold,
    is_billing_profile,
    stored_at_risk,
    stored_state,
    to_attribute,
)
from nps_sync.core.retry import retried
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.items import stored_profile, stored_response
from nps_sync.store.outcomes import OutcomesStore

# PROFILE attributes the outcome state and at-risk keys are derived from (and the responses).
INPUTS = (BILLING_STAMP, "status", "churned_at", "renewed_at", "mrr_amount")


def derivation_version(now: float) -> int:
    """The version a derivation is written with: its start in milliseconds. Every read it
    derives from came after that, so of two derivations of one customer the one with the
    higher version saw the records at least as late (set_outcome keeps the higher)."""
    return int(now * 1000)


def _customer(response: StoredResponse | None) -> str | None:
    return response.customer_key if response is not None else None


def _updated(response: StoredResponse | None) -> str:
    return (response.updated_at if response is not None else None) or ""


def affected(batch: Iterable[Change]) -> dict[str, int]:
    """Customers whose outcome state may have changed -> index of their first record."""
    found: dict[str, int] = {}
    for change in batch:
        old, new = change.old_response, change.new_response
        if old is not None or new is not None:
            customers = {_customer(old), _customer(new)} - {None}
        elif is_billing_profile(profile := change.new_profile):
            before = change.old_profile
            changed = any(getattr(before, n, None) != getattr(profile, n) for n in INPUTS)
            customers = {profile.customer_key} if changed else set()
        else:
            customers = set()
        for customer in customers:
            found.setdefault(customer, change.index)
    return found


def merge(
    customer: str, queried: list[StoredResponse], batch: list[Change]
) -> list[StoredResponse]:
    """The customer's responses: the index's answer (eventually consistent), corrected by the
    batch's own images where those are newer than what the index returned."""
    by_pk = {response.pk: response for response in queried}
    last: dict[str, Change] = {}
    for change in batch:
        if change.old_response is not None or change.new_response is not None:
            last[change.pk] = change
    for pk, change in last.items():
        seen, new = by_pk.get(pk), change.new_response
        if _customer(new) == customer:
            if seen is None or _updated(seen) < _updated(new):
                by_pk[pk] = new
        elif seen is not None and _updated(seen) <= _updated(change.old_response):
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
        responses: Callable[[str], list[StoredResponse]] | None = None,
        now: float | None = None,
    ) -> None:
        """``responses``: a customer's responses (the aggregator shares one per batch);
        ``now``: the batch's time (epoch seconds, taken before any read), the marks' time and
        the version of the states derived (docs/outcomes.md "Where the state lives")."""
        now = time.time() if now is None else now
        self._count(batch, lane, result, now)
        self._derive(batch, result, responses or self._responses, derivation_version(now))

    def _responses(self, customer: str) -> list[StoredResponse]:
        items = self.records.by_customer(customer, "RESP#")
        return [r for r in map(stored_response, items) if r is not None]

    def _count(self, batch: list[Change], lane: Lane, result: Failures, now: float) -> None:
        pending = fold(
            ((c.index, c.sequence, c.old_profile, c.new_profile) for c in batch), self.dimensions
        )

        def write(key: Pending) -> int:  # core/retry.py: the marks make a repeat a no-op
            return retried(apply_key, self.store, key, lane.shard_id, lane.ancestors, now=now)

        write_keys(list(pending.values()), write, result, "outcome")

    def _derive(
        self,
        batch: list[Change],
        result: Failures,
        responses: Callable[[str], list[StoredResponse]],
        version: int,
    ) -> None:
        customers = affected(batch)
        if not customers:
            return
        try:
            profiles = retried(self.records.profiles, customers)
        except StorageUnavailable:
            result.fail(min(customers.values()))
            return
        for customer, item in profiles.items():
            profile = stored_profile(item)
            if profile is None or not is_billing_profile(profile):
                continue
            try:
                queried = responses(customer)
                state = derive(profile, merge(customer, queried, batch))
                keys = at_risk_attributes(profile, state)
                if state != stored_state(profile) or keys != stored_at_risk(profile):
                    derived = {name: keys.get(name) for name in AT_RISK_ATTRIBUTES}
                    stamp = to_attribute(profile.billing_updated_at)
                    self.records.set_outcome(
                        customer, to_attribute(state), stamp, derived, version=version
                    )
            except StorageUnavailable:
                result.fail(customers[customer])
