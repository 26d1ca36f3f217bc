"""Checking decoded JSON against a documented shape (a msgspec Struct): the request path's
validation, in one C pass. msgspec rather than pydantic: pydantic's import alone took a webhook
function's whole cold-start budget (docs/decisions.md)."""

import re
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from nps_sync.core.errors import InvalidPayload

Schema = TypeVar("Schema")


def validate(value: Any, schema: type[Schema], at: str = "") -> Schema:
    """``value`` as ``schema``, or InvalidPayload (400) naming the failing rule and path
    (``score``; ``at`` is where ``value`` is in the body), never the value, which may be
    personal data. Strict: a JSON string is not read as a number, nor a number as a time.
    ``schema`` is best a Struct: msgspec caches a Struct's checks, not a ``list[…]``'s."""
    try:
        return msgspec.convert(value, schema, strict=True)
    except msgspec.ValidationError as error:
        raise InvalidPayload(message(error, at)) from None


def message(error: msgspec.ValidationError, at: str = "") -> str:
    """msgspec's rule after its path, dotted (``items.0.score: Expected `int` <= 10``), as
    the rest of our 400s name a field; the value an enum refused is left out."""
    rule, _, path = str(error).partition(" - at `")
    if rule.startswith("Invalid enum value"):
        rule = "Invalid enum value"
    dotted = re.sub(r"\[(\d+)\]", r".\1", path.rstrip("`")).removeprefix("$").lstrip(".")
    where = ".".join(part for part in (at, dotted) if part)
    return f"{where}: {rule}" if where else rule


def decimal_within(value: Decimal | None, name: str, upper: int, inclusive: bool = True) -> None:
    """0 <= ``value`` <= (or <) ``upper``, for a schema's ``__post_init__``: msgspec's Meta takes
    no bounds for a Decimal. Its ValueError there becomes msgspec's ValidationError, so
    validate() refuses it (422) with the path; NaN and Infinity are refused too."""
    if value is None or (
        value.is_finite() and (0 <= value <= upper if inclusive else 0 <= value < upper)
    ):
        return
    bound = f"<= {upper}" if inclusive else f"< {upper}"
    raise ValueError(f"Expected `decimal` >= 0 and {bound} for {name}")
