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
"""

from collections.abc import Iterable
from typing import Any

from nps_sync.core import lww
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.store import dynamo
from nps_sync.store.customers import PROFILE_SK, RESPONSE_SK, VERSION, CustomerRecords, customer_pk

LINK_SK = "ID"
MAX_ATTEMPTS = 5

Key = dict[str, Any]


def link_pk(alias: str) -> str:
    return f"ID#{alias}"


class Links:
    def __init__(self, records: CustomerRecords):
        self.records = records
        self.client = records.client
        self.table = records.table_name

    def resolve(self, key: str, candidates: list[str]) -> str:
        """The customer key of the first linked alias among ``[key, *candidates]``, following
        links to their end (an own id linked to an e-mail after a provider id to the own id)."""
        for alias in [key, *candidates]:
            linked = self.linked(alias)
            if linked:
                for _ in range(3):
                    further = self.linked(linked)
                    if not further or further == linked:
                        break
                    linked = further
                return linked
        return key

    def linked(self, alias: str) -> str | None:
        item = self._link(alias)
        return item["customer_key"]["S"] if item else None

    def _link(self, alias: str) -> Key | None:
        return self.records._call(
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
            ConsistentRead=True,
        ).get("Item")

    def link(self, alias: str, key: str) -> bool:
        """Record ``alias -> key`` and move what is stored under the alias, also when the link
        was already there but its move not finished (an earlier request failed midway: the
        link is marked ``settled`` only once its move is done). True if the link is new."""
        item = self._link(alias)
        if item and item["customer_key"]["S"] == key and "settled" in item:
            return False  # linked and moved: records under the alias resolve to the key now
        current = item["customer_key"]["S"] if item else None
        created = False
        if current is None:
            created = self._update(
                {"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
                UpdateExpression="SET #t = :t, customer_key = :k, gsi1pk = :g, gsi1sk = :s",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeNames={"#t": "type"},
                ExpressionAttributeValues={
                    ":t": {"S": "link"},
                    ":k": {"S": key},
                    ":g": {"S": customer_pk(key)},
                    ":s": {"S": f"ID#{alias}"},
                },
            )
            current = key if created else self.linked(alias)
        if current != key and (current is None or self.resolve(current, []) != key):
            # Linked to another key: a merge of two customers is an operator's call.
            logger.warning("identity alias already linked elsewhere; not moved")
            return False
        self.rekey(alias, key)
        if current == key:
            self._update(
                {"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
                UpdateExpression="SET settled = :t",
                ConditionExpression="customer_key = :k",
                ExpressionAttributeValues={":t": {"BOOL": True}, ":k": {"S": key}},
            )
        return created

    def settle(self, key: str, written: Iterable[Key] = ()) -> str:
        """After writing under ``key``: if a link for it appeared meanwhile, move to it what was
        just written (named by its primary key) and what the index lists."""
        linked = self.resolve(key, [])
        if linked != key:
            self.rekey(key, linked, written)
        return linked

    def rekey(self, old: str, new: str, written: Iterable[Key] = ()) -> int:
        """Move the records under ``old`` to ``new`` (the ``written`` ones by key, older ones
        as the index lists them) and merge the profile. A moved response drops its segment
        stamp, which belonged to the old customer's profile: the new customer's profile
        version is then always newer, and it is stamped again right here (and by the
        aggregator from the stream)."""
        keys = {(k["pk"]["S"], k["sk"]["S"]): k for k in written}
        for item in self.records.by_customer(old):  # responses, profiles and links alike
            keys.setdefault((item["pk"]["S"], item["sk"]["S"]), item)
        moved = [key for key in keys.values() if self._move(key, old, new)]
        self._merge_profile(old, new)
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

    def _merge_profile(self, old: str, new: str) -> None:
        """Fold the alias's PROFILE into the customer's, field by field the newer value wins
        (nps_sync.core.lww); then delete it. Idempotent, so a retry after a failure repeats it."""
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
