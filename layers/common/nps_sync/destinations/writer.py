"""DestinationFunction's work: the customers a batch of queued changes names, written into one
destination, each once with its latest state.

A queued message only names what changed (a customer, or an erasure's provider ids); the
values are read when written, so a burst of answers from one customer, a retry of an older
message or a destination catching up after an outage writes the customer's latest state once,
and a message that comes back after a newer one was written finds the destination holding it
already (``unchanged``: nothing is sent). Values the destination holds are compared first, so
our write-back never repeats itself and an echo of it (the provider's webhook about our own
change) has nothing to add.

Object ids come from our identity links (a provider profile stored under the customer, or a
link a lookup left); without one the client looks the object up by e-mail, and a match is
remembered as a link. No match is ``skipped`` with its reason in the write log, not retried.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger, metrics
from nps_sync.destinations import fields as fields_
from nps_sync.destinations.accounts import AccountSummaries
from nps_sync.destinations.base import (
    FAILED,
    ORGANIZATION,
    PERSON,
    SKIPPED,
    UNCHANGED,
    WRITTEN,
    Client,
    DestinationError,
    Result,
    Retryable,
    Target,
    Write,
)
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.destinations import Destination, WriteRecord
from nps_sync.store.items import stored_response, text
from nps_sync.store.links import Links

NO_ACCOUNT = "no company or Account in the destination has the account's name"
NO_MATCH = "no object in the destination matches the customer (no link, no e-mail match)"


@dataclass
class Change:
    """What one batch asks of one destination: customers to write, objects to clear."""

    customers: list[str] = field(default_factory=list)
    clears: list[Target] = field(default_factory=list)


@dataclass(frozen=True)
class Person:
    key: str
    object_id: str | None
    email: str | None
    latest: Any  # StoredResponse | None


def alias(kind: str, object_id: str) -> str:
    """The identity alias of a destination's object (``hubspot:123``, ``stripe:cus_…``)."""
    return f"{kind}:{object_id}"


def object_ids(kind: str, items: list[dict[str, Any]]) -> list[str]:
    """The person objects a customer has in ``kind`` as our by_customer index lists them: its
    provider profiles (a HubSpot contact, a Stripe customer, …) first, then links a lookup
    left (``ID#hubspot:123``)."""
    profiles, links = [], []
    for item in items:
        index_key = text(item, "gsi1sk") or ""
        if index_key.startswith(f"PROF#{kind}#") and text(item, "object_type") in (
            None,
            "contact",
        ):
            # HubSpot ids are kept as ``contact-<id>`` (ingest.hubspot.provider_id)
            profiles.append((text(item, "source_id") or "").removeprefix("contact-"))
        elif index_key.startswith(f"ID#{kind}:"):
            links.append(index_key.removeprefix(f"ID#{kind}:"))
    return [i for i in dict.fromkeys(profiles + links) if i]


class DestinationWriter:
    def __init__(
        self,
        records: CustomerRecords,
        client_for: Callable[[Destination], Client],
        accounts: AccountSummaries | None = None,
    ):
        self.records = records
        self.links = Links(records)
        self.client_for = client_for
        self.accounts = accounts

    def write(self, destination: Destination, change: Change) -> list[WriteRecord]:
        """Raises Retryable (the provider asks to wait, or fails) or StorageUnavailable: the
        whole change stays queued; a write that went through before is ``unchanged`` then."""
        client = self.client_for(destination)
        mapped = fields_.mapping(destination.kind, destination.fields, destination.include_comment)
        log: list[WriteRecord] = []
        people = [self._person(destination.kind, key) for key in dict.fromkeys(change.customers)]
        people = self._identified(destination, client, people, log)
        writes = [
            Write(
                Target(PERSON, p.key, p.object_id, p.email),
                fields_.person_values(p.latest, mapped),
            )
            for p in people
            if p.latest is not None
        ]
        writes += self._organizations(destination, client, mapped, people, log)
        writes += [
            Write(target, dict.fromkeys(self._level_fields(mapped, target.level)))
            for target in change.clears
        ]
        results = self._apply(client, writes)
        cleared = {id(w) for w in writes[len(writes) - len(change.clears) :]}
        for result in results:
            status = result.status
            if id(result.write) in cleared and status in (WRITTEN, UNCHANGED):
                status = "cleared"
            log.append(
                WriteRecord(
                    destination.id,
                    result.write.target.level,
                    result.write.target.object_id,
                    status,
                    result.reason,
                )
            )
        for status in (WRITTEN, UNCHANGED, SKIPPED, FAILED, "cleared"):
            count = sum(r.status == status for r in log)
            if count:
                metrics.add_metric(name=f"Destination{status.title()}", unit="Count", value=count)
        return log

    def _organizations(
        self, destination: Destination, client: Client, mapped: dict, people: list, log: list
    ) -> list[Write]:
        """The accounts of the customers written: each account's summary on its company or
        Account, found by name (organizations are not customers: no link is kept)."""
        if self.accounts is None or ORGANIZATION not in client.levels:
            return []
        names = list(dict.fromkeys(p.latest.account for p in people if p.latest.account))
        if not names:
            return []
        found = client.lookup([Target(ORGANIZATION, name, None, name=name) for name in names])
        writes = []
        for name in names:
            if name not in found:
                log.append(WriteRecord(destination.id, ORGANIZATION, None, SKIPPED, NO_ACCOUNT))
                continue
            summary = self.accounts.summary(name, destination.window_days)
            writes.append(
                Write(
                    Target(ORGANIZATION, name, found[name], name=name),
                    fields_.organization_values(summary, mapped),
                )
            )
        return writes

    def _person(self, kind: str, key: str) -> Person:
        items = self.records.by_customer(key)
        answers = [r for r in map(stored_response, items) if r is not None]
        latest = max(
            answers, key=lambda r: (r.submitted_at or "", r.response_id or ""), default=None
        )
        found = object_ids(kind, items)
        object_id = found[0] if found else None
        email = (latest.email if latest else None) or (key if "@" in key else None)
        return Person(key, object_id, email, latest)

    def _identified(
        self, destination: Destination, client: Client, people: list[Person], log: list
    ) -> list[Person]:
        """People with an object id: looked up by e-mail where we had none (remembered as a
        link); the rest logged as skipped."""
        unknown = [p for p in people if p.object_id is None and p.latest is not None]
        found: dict[str, str] = {}
        lookups = [Target(PERSON, p.key, None, p.email) for p in unknown if p.email]
        if lookups:
            found = client.lookup(lookups)
        ready = []
        for person in people:
            if person.latest is None:
                continue  # nothing to write (erased meanwhile): the message is done
            object_id = person.object_id or found.get(person.key)
            if object_id is None:
                log.append(WriteRecord(destination.id, PERSON, None, SKIPPED, NO_MATCH))
                continue
            if person.object_id is None:
                self._remember(destination.kind, object_id, person.key)
            ready.append(Person(person.key, object_id, person.email, person.latest))
        return ready

    def _remember(self, kind: str, object_id: str, key: str) -> None:
        try:
            self.links.link(alias(kind, object_id), key)
        except StorageUnavailable:
            logger.warning(
                "remembering a destination's object id failed; looked up again next time"
            )

    @staticmethod
    def _level_fields(mapped: dict[str, str], level: str) -> list[str]:
        return [name for logical, name in mapped.items() if fields_.FIELDS[logical][0] == level]

    def _apply(self, client: Client, writes: Sequence[Write]) -> list[Result]:
        """Compare with what the destination holds; write only what differs."""
        results: dict[int, Result] = {}
        pending: list[Write] = []
        by_level: dict[str, list[Write]] = {}
        for write in writes:
            by_level.setdefault(write.target.level, []).append(write)
        for level, group in by_level.items():
            names = sorted({name for write in group for name in write.values})
            held = client.current(level, [w.target.object_id for w in group], names)  # type: ignore[arg-type, misc]
            for write in group:
                current = held.get(write.target.object_id)  # type: ignore[arg-type]
                if current is None:
                    results[id(write)] = Result(write, SKIPPED, "the object no longer exists")
                elif all(_same(current.get(k), v) for k, v in write.values.items()):
                    results[id(write)] = Result(write, UNCHANGED)
                else:
                    pending.append(write)
        if pending:
            for result in client.write(pending):
                results[id(result.write)] = result
        return [results[id(write)] for write in writes]


def _same(held: Any, wanted: Any) -> bool:
    if wanted is None:  # cleared; a checkbox cannot be null (Salesforce clears it to false)
        return held in (None, "") or held is False
    if isinstance(wanted, bool) or isinstance(held, bool):
        return str(held).lower() == str(wanted).lower()
    if isinstance(wanted, int | float):
        try:
            return float(held) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(held) == str(wanted)


__all__ = ["Change", "DestinationError", "DestinationWriter", "Retryable", "alias"]
