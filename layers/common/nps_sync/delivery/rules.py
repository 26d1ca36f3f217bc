"""Which events a rule on the bus could receive (docs/events.md "What goes on the bus").

EventBridge bills every event PUT, whether or not a rule matches it. So the aggregator reads
its bus's rules (ListRules, kept RULES_TTL_SECONDS per container) and puts an event only when
an enabled rule's pattern could match it. Of a pattern, only the top-level ``source`` and
``detail-type`` are evaluated, against what ``EventBus.entry`` sends; anything else in it
(``detail``, ``account``, an operator not read here, a malformed part) counts as a match:
an event that some rule could receive is never left off. When the rules cannot be read, every
event is put (fail open), for RULES_TTL_SECONDS, and the lookup is tried again.
"""

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.observability import logger, metrics

RULES_TTL_SECONDS = 60.0  # how long a container trusts what ListRules answered
LIST_RULES_LIMIT = 100  # ListRules' largest page
MAX_PAGES = 100  # 10,000 rules: beyond that (or a NextToken that never ends) put everything
UNAVAILABLE_METRIC = "BusRulesUnavailable"


class RulesUnavailable(Exception):
    """The bus's rules could not be read in full."""


def could_match(pattern: Any, source: str, detail_type: str) -> bool:
    """False only when the pattern cannot match an event with this source and detail-type,
    whatever the rest of the event holds."""
    if not isinstance(pattern, dict):
        return True
    fields = {"source": source, "detail-type": detail_type}
    for name, condition in pattern.items():
        if name == "$or":
            alternatives = condition if isinstance(condition, list) else []
            if alternatives and not any(could_match(p, source, detail_type) for p in alternatives):
                return False
        elif name in fields and not _field_could_match(condition, fields[name]):
            return False
    return True


def _field_could_match(condition: Any, value: str) -> bool:
    if not isinstance(condition, list) or not condition:
        return True  # not a list of values: not a form read here
    return any(_value_could_match(matcher, value) for matcher in condition)


def _value_could_match(matcher: Any, value: str) -> bool:
    if isinstance(matcher, str):
        return matcher == value
    if not isinstance(matcher, dict) or len(matcher) != 1:
        return True  # a number, null, several operators at once: not read here
    ((operator, operand),) = matcher.items()
    if operator == "exists":
        return operand is not False  # source and detail-type are always there
    if operator == "anything-but":
        return not _excluded(operand, value)
    found = _operator(operator, operand, value)
    return True if found is None else found


def _excluded(operand: Any, value: str) -> bool:
    """Whether ``anything-but`` with this operand surely leaves the value out."""
    if isinstance(operand, str):
        return operand == value
    if isinstance(operand, list):
        return value in [item for item in operand if isinstance(item, str)]
    if isinstance(operand, dict) and len(operand) == 1:
        ((operator, inner),) = operand.items()
        return _operator(operator, inner, value) is True
    return False  # a number, or an operator not read here: may match


def _operator(operator: str, operand: Any, value: str) -> bool | None:
    """Whether ``value`` matches ``{operator: operand}``; None when that is not known here."""
    if operator == "equals-ignore-case":
        return _any_of(operand, lambda text: _folded(value, text, str.__eq__))
    if operator in ("prefix", "suffix"):
        test = str.startswith if operator == "prefix" else str.endswith
        if isinstance(operand, dict) and set(operand) == {"equals-ignore-case"}:
            return _any_of(operand["equals-ignore-case"], lambda text: _folded(value, text, test))
        return _any_of(operand, lambda text: test(value, text))
    if operator == "wildcard":
        return _any_of(operand, lambda text: _wildcard(value, text))
    return None  # numeric, cidr, an operator added after this was written


def _any_of(operand: Any, test: Callable[[str], bool | None]) -> bool | None:
    texts = operand if isinstance(operand, list) else [operand]
    if not texts or not all(isinstance(text, str) for text in texts):
        return None
    results = [test(text) for text in texts]
    if any(result is True for result in results):
        return True
    return None if None in results else False


def _folded(value: str, text: str, test: Callable[[str, str], bool]) -> bool | None:
    """Case-insensitive ``test``; only for ASCII, the one case folding not in doubt."""
    if not (value.isascii() and text.isascii()):
        return None
    return test(value.lower(), text.lower())


def _wildcard(value: str, text: str) -> bool | None:
    """``*`` is any run of characters; a backslash (an escape) is not read here."""
    if "\\" in text:
        return None
    parts = text.split("*")
    if len(parts) == 1:
        return value == text
    head, middle, tail = parts[0], parts[1:-1], parts[-1]
    if len(value) < len(head) + len(tail) or not (value.startswith(head) and value.endswith(tail)):
        return False
    position, end = len(head), len(value) - len(tail)
    for part in middle:  # each as early as it occurs: what is left can only be longer
        found = value.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


class BusRules:
    """The enabled event patterns on one bus, read with ListRules and kept for a while."""

    def __init__(
        self,
        client: Any,
        bus_name: str,
        ttl: float = RULES_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.bus_name = bus_name
        self.ttl = ttl
        self.clock = clock
        self.patterns: list[Any] | None = None  # None: not known, every event goes
        self.read_at: float | None = None
        self.lookups = 0  # ListRules reads (each of one or more pages), for tests
        self._wanted: dict[tuple[str, str], bool] = {}

    def wants(self, source: str, detail_type: str) -> bool:
        """Whether an event with this source and detail-type should be put."""
        now = self.clock()
        if self.read_at is None or not 0 <= now - self.read_at < self.ttl:  # or a clock reset
            self._refresh(now)
        if self.patterns is None:
            return True
        key = (source, detail_type)
        if key not in self._wanted:
            self._wanted[key] = any(could_match(p, source, detail_type) for p in self.patterns)
        return self._wanted[key]

    def _refresh(self, now: float) -> None:
        self.read_at, self._wanted = now, {}
        self.lookups += 1
        try:
            self.patterns = self._read()
        except (ClientError, BotoCoreError, RulesUnavailable) as error:
            self.patterns = None
            code = error.response["Error"]["Code"] if isinstance(error, ClientError) else None
            metrics.add_metric(name=UNAVAILABLE_METRIC, unit="Count", value=1)
            logger.warning(
                "bus rules unavailable; every event is put",
                extra={"bus": self.bus_name, "error": code or type(error).__name__},
            )

    def _read(self) -> list[Any]:
        patterns: list[Any] = []
        token = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"EventBusName": self.bus_name, "Limit": LIST_RULES_LIMIT}
            if token:
                params["NextToken"] = token
            page = self.client.list_rules(**params)
            for rule in page.get("Rules") or []:
                if rule.get("State") == "DISABLED":
                    continue
                text = rule.get("EventPattern")
                if not text:
                    continue  # a schedule: it receives no events
                try:
                    patterns.append(json.loads(text))
                except ValueError:
                    patterns.append(None)  # unreadable here: may match anything
            token = page.get("NextToken")
            if not token:
                return patterns
        raise RulesUnavailable(f"more than {MAX_PAGES} pages of rules")
