"""Our own documented survey body (DESIGN.md §5), signed per Standard Webhooks."""

from typing import Annotated

import msgspec

from nps_sync.core.models import COMMENT_LENGTH, EventTime, Key, Response, Score
from nps_sync.ingest.receive import Batch, GenericItem, generic_batch, verify_standard

verify = verify_standard


class GenericResponse(GenericItem, frozen=True, kw_only=True):
    score: Score
    submitted_at: EventTime
    updated_at: EventTime | None = None
    survey: Key | None = None
    channel: Key | None = None
    comment: Annotated[str, msgspec.Meta(max_length=COMMENT_LENGTH)] | None = None


def parse(request, settings) -> Batch:
    return generic_batch(request, GenericResponse, _response)


def _response(item: GenericResponse, key: str) -> Response:
    return Response(
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
