"""Last writer wins per field, by the source's own timestamp (docs/identity.md "Order of updates").

Every stored field ``f`` keeps the source time of the value it holds in ``at:f``, and each item
keeps a **clock** per group of fields (``source_updated_at`` on a provider's record; on the
merged PROFILE ``crm_updated_at``, ``billing_updated_at``, ``identity_updated_at``): the newest
time any field of the group was written with. A write is tried first as the newest of its
groups (condition: clock <= its time, no read needed, the usual case). When that fails it was
late: the item is read and only the fields it is newer for are written, on condition that the
item's revision is still the one read. So a HubSpot event carrying one property is applied
even when a newer event about another property came first, but never over a newer value of
its own property.
"""

from collections.abc import Mapping
from typing import Any

STAMP = "at:"
# The merged PROFILE's fields, by the clock that orders them (each provider orders its own
# resources: a newer CRM update must not hide an older billing one).
GROUP_FIELDS = {
    "crm_updated_at": ("account", "region", "country", "owner", "lifecycle_stage"),
    "billing_updated_at": (
        "plan",
        "status",
        "mrr_amount",
        "mrr_currency",
        "renews_at",
        "subscription_id",
    ),
    "identity_updated_at": ("email", "customer_id"),
}
CUSTOM = "prop:"  # custom CRM properties ride with the CRM clock

Item = Mapping[str, Any]


def stamp(field: str) -> str:
    return STAMP + field


def profile_clocks(fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """The merged PROFILE's clocks of the given fields."""
    clocks: dict[str, list[str]] = {}
    for name in fields:
        clock = "crm_updated_at" if name.startswith(CUSTOM) else None
        clock = clock or next((c for c, names in GROUP_FIELDS.items() if name in names), None)
        if clock is not None:
            clocks.setdefault(clock, []).append(name)
    return clocks


def _text(item: Item | None, name: str) -> str | None:
    value = (item or {}).get(name)
    return value.get("S") if isinstance(value, Mapping) else None


def field_time(item: Item | None, name: str, clock: str) -> str | None:
    """When the stored value of ``name`` was written at its source (items written before
    per-field stamps: the clock of its group)."""
    if item is None or name not in item:
        return None
    return _text(item, stamp(name)) or _text(item, clock)


class Update:
    """The clauses of one UpdateItem. Placeholders are numbered: attribute names (CRM property
    names, ``at:<field>``) may hold any character."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = []
        self._placeholders: dict[str, str] = {}

    def name(self, attribute: str) -> str:
        if attribute not in self._placeholders:
            self._placeholders[attribute] = f"#n{len(self._placeholders)}"
            self.names[self._placeholders[attribute]] = attribute
        return self._placeholders[attribute]

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_absent(self, attribute: str, value: Any) -> None:
        name = self.name(attribute)
        self.sets.append(f"{name} = if_not_exists({name}, {self.value(value)})")

    def add(self, attribute: str, value: Any) -> None:
        self.adds.append(f"{self.name(attribute)} {self.value(value)}")

    def remove(self, attribute: str) -> None:
        self.removes.append(self.name(attribute))

    def require_at_most(self, attribute: str, value: str) -> None:
        """The stored string is absent or not after ``value``."""
        name = self.name(attribute)
        self.conditions.append(
            f"(attribute_not_exists({name}) OR {name} <= {self.value({'S': value})})"
        )

    def require_unchanged(self, attribute: str, seen: Any) -> None:
        name = self.name(attribute)
        if seen is None:
            self.conditions.append(f"attribute_not_exists({name})")
        else:
            self.conditions.append(f"{name} = {self.value(seen)}")

    def require(self, condition: str) -> None:
        self.conditions.append(condition)

    @property
    def empty(self) -> bool:
        return not (self.sets or self.adds or self.removes)

    def render(self) -> dict[str, Any]:
        clauses = []
        if self.sets:
            clauses.append("SET " + ", ".join(self.sets))
        if self.removes:
            clauses.append("REMOVE " + ", ".join(self.removes))
        if self.adds:
            clauses.append("ADD " + ", ".join(self.adds))
        rendered: dict[str, Any] = {
            "UpdateExpression": " ".join(clauses),
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            rendered["ExpressionAttributeValues"] = self.values
        if self.conditions:
            rendered["ConditionExpression"] = " AND ".join(self.conditions)
        return rendered


def apply_newer(
    update: Update,
    fields: Mapping[str, Any],
    times: Mapping[str, str],
    clocks: Mapping[str, list[str]],
    revision: str,
    current: Item | None = None,
    read: bool = False,
) -> list[str]:
    """Add to ``update`` the fields this write is the newest source for, each with its stamp,
    and the conditions that keep it so; returns their names.

    ``times`` is each field's source time (fixed-width ISO strings compare as times). Without
    ``read`` the write is assumed to be the newest of its clocks; with it, ``current`` is the
    item as read (None: not there) and older clocks take only their newer fields.
    """
    applied: list[str] = []
    partial = False
    for clock, names in clocks.items():
        mine = [n for n in names if n in fields]
        if not mine:
            continue
        oldest = min(times[n] for n in mine)
        seen = _text(current, clock)
        if not read or seen is None or seen <= oldest:
            update.require_at_most(clock, oldest)
            update.set(clock, {"S": max(times[n] for n in mine)})
            chosen = mine
        else:
            partial = True
            chosen = [n for n in mine if (field_time(current, n, clock) or "") <= times[n]]
            if chosen and max(times[n] for n in chosen) > seen:
                update.set(clock, {"S": max(times[n] for n in chosen)})
        for name in chosen:
            update.set(name, fields[name])
            update.set(stamp(name), {"S": times[name]})
        applied.extend(chosen)
    if partial:
        update.require_unchanged(revision, (current or {}).get(revision))
    if applied:
        update.add(revision, {"N": "1"})
    return applied
