"""Our own documented survey body (DESIGN.md §5), signed per Standard Webhooks."""

from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter

from nps_sync.errors import InvalidPayload
from nps_sync.identity import customer_key
from nps_sync.models import CustomerRef, Key, Response, Score, UtcDatetime
from nps_sync.signing import standard_verify
from nps_sync.webhooks import Batch, Record, load_json


def verify(request, credentials, now, settings) -> None:
    standard_verify(
        [credentials["secret"]],
        request.headers,
        request.body,
        now,
        settings.signature_tolerance_seconds,
    )


class GenericResponse(BaseModel):
    id: Key
    customer: CustomerRef
    score: Score
    submitted_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    survey: Key | None = None
    channel: Key | None = None
    comment: Annotated[str, Field(max_length=20_000)] | None = None


_MANY = TypeAdapter(Annotated[list[GenericResponse], Field(max_length=500)])


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    raws = raw if isinstance(raw, list) else [raw]
    items = _MANY.validate_python(raws)
    return Batch(
        records=[_record(item, item_raw) for item, item_raw in zip(items, raws, strict=True)]
    )


def _record(item: GenericResponse, raw) -> Record:
    key = customer_key(email=item.customer.email, customer_id=item.customer.id)
    if key is None:
        raise InvalidPayload("customer.email is not an e-mail address and customer.id is empty")
    response = Response(
        provider="generic",
        response_id=item.id,
        customer_key=key,
        score=item.score,
        submitted_at=item.submitted_at,
        updated_at=item.updated_at or item.submitted_at,
        survey=item.survey,
        channel=item.channel,
        comment=item.comment,
        email=item.customer.email,
        customer_id=item.customer.id,
    )
    return Record(response, raw)
