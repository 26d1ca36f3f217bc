"""Identity links: one customer across systems (rules in docs/identity.md).

A link item ``ID#<alias>`` says which customer key an alias (an own customer id, or a
provider id like ``stripe:cus_…``) belongs to. Records that arrive before their link are kept
under the alias; when the link arrives, they are moved (``rekey``). Both orders end the same:

- link first: a record written later resolves its alias through the link before it is stored;
- record first: writing the link moves every record indexed under the alias, and a record
  written under an alias re-checks the link right after its write, so a link written between
  its lookup and its write is not missed. That record is moved by its primary key: the index
  is eventually consistent and may not list it yet.

Moving is idempotent and resumable: every record naming an alias that is linked runs it again
(a duplicate too), so a provider's retry after a failed move completes it.

The index lags: a record written under the alias just before its link may be missing from the
link's Query. So a settled link (moved once) is moved once more by the first record naming the
alias INDEX_LAG_SECONDS after the link was written (``linked_at``), when the index lists
everything written before it, and only then marked ``rechecked`` (no more moves). What no
later record names is found by ``repair_orphans`` (reconcile's repair).
"""

import time
from collections.abc import Iterable, Mapping
from typing import Any

from nps_sync.core import identity, lww
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.store import dynamo
from nps_sync.store.customers import PROFILE_SK, RESPONSE_SK, VERSION, CustomerRecords, customer_pk

LINK_SK = "ID"
MAX_ATTEMPTS = 5
# How far behind the by_customer index may be. DynamoDB states no bound for a GSI's lag
# ("usually a fraction of a second"); a minute is a wide margin, and costs only one Query per
# record naming the alias during that minute.
INDEX_LAG_SECONDS = 60
LINKED_AT = "linked_at"  # when a link was written (epoch seconds)
# On a link: ``settled``, its move ran (everything the index listed moved, the alias's
# PROFILE merged); ``rechecked``, a move ran again once the index had caught up with the link.
RECHECKED = "rechecked"
SETTLED = "SET settled = :t"
SETTLED_AND_RECHECKED = f"SET settled = :t, {RECHECKED} = :t"

Key = dict[str, Any]
Known = Mapping[str, Key | None]  # link items already read, by alias (None: no link)
_UNREAD: Any = object()


def link_pk(alias: str) -> str:
    return f"ID#{alias}"


def _link_key(alias: str) -> Key:
    return {"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}}


class Links:
    def __init__(self, records: CustomerRecords, clock=time.time):
        self.records = records
        self.client = records.client
        self.table = records.table_name
        self.clock = clock

    def resolve(self, key: str, candidates: list[str], known: Known | None = None) -> str:
        """The customer key of the first linked alias among ``[key, *candidates]``, following
        links to their end (an own id linked to an e-mail after a provider id to the own id).
        ``known``: link items read already (a batch's, read together); others are read."""
        for alias in [key, *candidates]:
            linked = self.linked(alias, known)
            if linked:
                for _ in range(3):
                    further = self.linked(linked, known)
                    if not further or further == linked:
                        break
                    linked = further
                return linked
        return key

    def linked(self, alias: str, known: Known | None = None) -> str | None:
        item = known[alias] if known is not None and alias in known else self._link(alias)
        return _key_of(item) if item else None

    def _link(self, alias: str) -> Key | None:
        return self.records._call(
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
            ConsistentRead=True,
        ).get("Item")

    def link(self, alias: str, key: str) -> None:
        """Record ``alias -> key`` and move what is stored under the alias (link_all)."""
        self.link_all([(alias, key)])

    def link_all(self, pairs: Iterable[tuple[str, str]], known: Known | None = None) -> None:
        """Record each ``alias -> key`` and move what is stored under the alias, also when the
        link was already there but its move not finished (an earlier request failed midway:
        the link is marked ``settled`` only once its move is done), and once more when the
        index has caught up with the link, INDEX_LAG_SECONDS after ``linked_at`` (then marked
        ``rechecked``). ``known``: the link items as read before (a batch reads them together);
        a link settled there costs nothing until then, nor once rechecked.

        New links are created together (conditionally: one created meanwhile is kept), the
        aliases' profiles read together once their links exist, and the settled marks written
        together; what remains per alias is the Query of what is stored under it."""
        todo, items = [], {}
        started = self.clock()  # before any Query below: what the index lists by then
        for alias, key in dict.fromkeys(pairs):
            item = known[alias] if known is not None and alias in known else self._link(alias)
            settled = item and _key_of(item) == key and "settled" in item
            if settled and (RECHECKED in item or not _caught_up(item, started)):
                # moved (and again once the index had caught up); or moved, and the index may
                # still hide some: the first move after it has caught up takes them
                continue
            items[alias] = item
            todo.append((alias, key, _key_of(item) if item else None))
        # an absent alias is linked to its first pair's key (reversed: the first one wins)
        created = self._create(
            {alias: key for alias, key, current in reversed(todo) if not current}
        )
        moves = []
        for alias, key, current in todo:
            current = current or created[alias]
            if current != key and (current is None or self.resolve(current, []) != key):
                # Linked to another key: a merge of two customers is an operator's call.
                logger.warning("identity alias already linked elsewhere; not moved")
                continue
            # settled only when this move's Query comes after the index caught up with the
            # link: a record written under the alias just before the link is listed by then
            caught_up = items.get(alias) is not None and _caught_up(items[alias], started)
            mark = None if current != key else SETTLED_AND_RECHECKED if caught_up else SETTLED
            moves.append((alias, key, mark))
        sources = self.records.profiles(alias for alias, _, _ in moves)
        for alias, key, _ in moves:
            self.rekey(alias, key, source=sources.get(alias))
        dynamo.write_all_if(
            self.client,
            [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
                        "UpdateExpression": mark,
                        "ConditionExpression": "customer_key = :k",
                        "ExpressionAttributeValues": {":t": {"BOOL": True}, ":k": {"S": key}},
                    }
                }
                for alias, key, mark in moves
                if mark
            ],
        )

    def orphans(self, customer_keys: Iterable[str]) -> dict[str, str]:
        """Of the keys records are stored under, those linked onward (an alias whose records
        a lagging index kept from their move), each with the customer it resolves to. One
        BatchGetItem per 100 keys (e-mail keys are never aliases: not read), a GetItem per
        further step of a chain."""
        aliases = sorted({k for k in customer_keys if not identity.is_email_key(k)})
        found = dynamo.get_all(self.client, self.table, map(_link_key, aliases))
        known = {a: found.get((link_pk(a), LINK_SK)) for a in aliases}
        linked = {a: self.resolve(a, [], known) for a in aliases if known[a]}
        return {alias: key for alias, key in linked.items() if key != alias}

    def repair_orphans(self, customer_keys: Iterable[str]) -> int:
        """Reconcile's repair of orphans: move what is still stored under linked aliases
        among ``customer_keys`` (the keys its scan saw on responses and profiles) to their
        customers, as a link's own move does (``rekey``). The records moved; 0 when none."""
        return sum(self.rekey(alias, key) for alias, key in self.orphans(customer_keys).items())

    def _create(self, links: dict[str, str]) -> dict[str, str | None]:
        """Create absent links (each only if still absent): the key each alias is linked to
        now, the one asked for or the one another request linked it to meanwhile."""
        pairs = list(links.items())
        failed = dynamo.write_all_if(
            self.client,
            [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
                        "UpdateExpression": "SET #t = :t, customer_key = :k, gsi1pk = :g, "
                        "gsi1sk = :s, #at = :at",
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ExpressionAttributeNames": {"#t": "type", "#at": LINKED_AT},
                        "ExpressionAttributeValues": {
                            ":t": {"S": "link"},
                            ":k": {"S": key},
                            ":g": {"S": customer_pk(key)},
                            ":s": {"S": f"ID#{alias}"},
                            ":at": {"N": str(int(self.clock()))},
                        },
                    }
                }
                for alias, key in pairs
            ],
        )
        return {
            alias: key if stored is None else _key_of(stored) or self.linked(alias)
            for (alias, key), stored in zip(pairs, failed, strict=True)
        }

    def settle(self, key: str, written: Iterable[Key] = (), known: Known | None = None) -> str:
        """After writing under ``key``: if a link for it appeared meanwhile, move to it what was
        just written (named by its primary key) and what the index lists. ``known``: link
        items read after the write."""
        linked = self.resolve(key, [], known)
        if linked != key:
            self.rekey(key, linked, written)
        return linked

    def rekey(self, old: str, new: str, written: Iterable[Key] = (), source: Any = _UNREAD) -> int:
        """Move the records under ``old`` to ``new`` (the ``written`` ones by key, older ones
        as the index lists them) and merge the profile. A moved response drops its segment
        stamp, which belonged to the old customer's profile: the new customer's profile
        version is then always newer, and it is stamped again right here (and by the
        aggregator from the stream). ``source``: the alias's PROFILE, if read already."""
        keys = {(k["pk"]["S"], k["sk"]["S"]): k for k in written}
        for item in self.records.by_customer(old):  # responses, profiles and links alike
            keys.setdefault((item["pk"]["S"], item["sk"]["S"]), item)
        moved = [key for key in keys.values() if self._move(key, old, new)]
        self._merge_profile(old, new, source)
        responses = [key for key in moved if key["sk"]["S"] == RESPONSE_SK]
        profile = self.records.profile(new) if responses else None
        if profile is not None:
            for response in responses:
                self.records.stamp(response, profile)
        if moved:
            logger.info("identity linked", extra={"records_moved": len(moved)})
        return len(moved)

    def _move(self, key: Key, old: str, new: str) -> bool:
        return self._update(
            {"pk": key["pk"], "sk": key["sk"]},
            UpdateExpression=f"SET customer_key = :new, gsi1pk = :g REMOVE {VERSION}",
            ConditionExpression="customer_key = :old",
            ExpressionAttributeValues={
                ":new": {"S": new},
                ":old": {"S": old},
                ":g": {"S": customer_pk(new)},
            },
        )

    def _merge_profile(self, old: str, new: str, source: Any = _UNREAD) -> None:
        """Fold the alias's PROFILE into the customer's, field by field the newer value wins
        (nps_sync.core.lww); then delete it. Idempotent, so a retry after a failure repeats it."""
        if source is _UNREAD:
            source = self.records.profile(old)
        if source is None:
            return
        for _ in range(MAX_ATTEMPTS):
            update = _merged(source, self.records.profile(new))
            if update is None or self._update(
                {"pk": {"S": customer_pk(new)}, "sk": {"S": PROFILE_SK}}, **update.render()
            ):
                break
        else:
            raise StorageUnavailable("the customer profile kept changing while it was merged")
        self.records.delete([{"pk": {"S": customer_pk(old)}, "sk": {"S": PROFILE_SK}}])

    def _update(self, key: Key, **kwargs: Any) -> bool:
        return dynamo.update_if(self.client, TableName=self.table, Key=key, **kwargs)


def _key_of(item: Key) -> str | None:
    return item.get("customer_key", {}).get("S")


def _caught_up(item: Key, now: float) -> bool:
    """Whether the index lists, at ``now``, everything written before the link (a link
    written before links carried their time is long past it)."""
    return now >= float(item.get(LINKED_AT, {}).get("N", "0")) + INDEX_LAG_SECONDS


def _merged(source: dict[str, Any], target: dict[str, Any] | None) -> lww.Update | None:
    """The update that folds ``source`` into ``target`` as read: each field the source holds a
    newer value of, each clock that is newer, the earlier ``billing_since``, the union of the
    renewal moments (``renewals`` counts them), ``churned_at`` with the status it belongs to.
    Conditional on the target's profile_version (every profile write adds one to it)."""
    target = target or {}
    update = lww.Update()
    for clock, names in lww.profile_clocks(source).items():
        for name in names:
            theirs = lww.field_time(source, name, clock)
            ours = lww.field_time(target, name, clock)
            if theirs is not None and (ours is None or theirs > ours):
                update.set(name, source[name])
                update.set(lww.stamp(name), {"S": theirs})
                if name == "status":
                    if "churned_at" in source:
                        update.set("churned_at", source["churned_at"])
                    else:
                        update.remove("churned_at")
        theirs, ours = source.get(clock, {}).get("S"), target.get(clock, {}).get("S")
        if theirs is not None and (ours is None or theirs > ours):
            update.set(clock, {"S": theirs})
    since = source.get("billing_since", {}).get("S")
    if since is not None and since < target.get("billing_since", {}).get("S", "~"):
        update.set("billing_since", {"S": since})
    renewals = set(source.get("renewed_at", {}).get("SS", []))
    known = set(target.get("renewed_at", {}).get("SS", []))
    if renewals - known:
        update.add("renewed_at", {"SS": sorted(renewals - known)})
        update.set("renewals", {"N": str(len(renewals | known))})
    if update.empty:
        return None
    update.add(VERSION, {"N": "1"})
    update.require_unchanged(VERSION, target.get(VERSION) if target else None)
    if not target:
        update.require("attribute_not_exists(pk)")
    return update
