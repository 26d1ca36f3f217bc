"""Delighted: ``X-Delighted-Webhook-Signature: sha256=<hex HMAC-SHA256(raw body)>``.

The key is the project's private API key; there is no timestamp. A response arrives as
``survey_response.created`` (score) and again as ``.updated`` (comment, changed score), so it
is upserted by ``event_data.id`` with ``updated_at`` as its version. Only responses that say
``survey_type: "nps"`` count: Delighted also runs CSAT, CES, … surveys with other scales.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from nps_sync.core.identity import customer_key
from nps_sync.core.models import EventTime, Response, Score
from nps_sync.core.signing import delighted_verify, header
from nps_sync.ingest.receive import Batch, Record, load_json, signing_secrets

RESPONSE_EVENTS = {"survey_response.created", "survey_response.updated"}
ID_PROPERTIES = ("customer id", "customer_id", "customerid", "user id", "user_id", "account id")


def verify(request, credentials, now, settings) -> None:
    given = header(request.headers, "X-Delighted-Webhook-Signature")
    delighted_verify(signing_secrets(credentials), given, request.body)


def _unix_seconds(value: Any) -> Any:
    """Delighted sends whole Unix seconds; pydantic alone would take a large number for
    milliseconds."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**11:
        return datetime.fromtimestamp(value, UTC)
    raise ValueError("is not a Unix time in whole seconds")


UnixTime = Annotated[EventTime, BeforeValidator(_unix_seconds)]


class Person(BaseModel):
    id: str | int | None = None
    email: str | None = None


class SurveyResponse(BaseModel):
    id: str | int
    survey_type: str | None = None
    score: Score | None = None
    comment: str | None = None
    created_at: UnixTime
    updated_at: UnixTime | None = None
    person: Person = Field(default_factory=Person)
    person_properties: dict[str, Any] | None = None
    channel: str | None = None


class Payload(BaseModel):
    event_type: str
    event_id: str | None = None
    event_data: dict[str, Any] | None = None


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    payload = Payload.model_validate(raw)
    if payload.event_type not in RESPONSE_EVENTS or payload.event_data is None:
        return Batch(ignored=1)  # e.g. unsubscribe.created
    data = SurveyResponse.model_validate(payload.event_data)
    if data.survey_type != "nps" or data.score is None:
        return Batch(ignored=1)  # another survey type, or none said: not an NPS answer
    props = {str(k).strip().lower(): v for k, v in (data.person_properties or {}).items()}
    own_id = next((str(props[k]) for k in ID_PROPERTIES if props.get(k) not in (None, "")), None)
    person_id = None if data.person.id is None else str(data.person.id)
    response = Response(
        provider="delighted",
        response_id=str(data.id),
        customer_key=customer_key(data.person.email, own_id, "delighted", person_id),
        score=data.score,
        submitted_at=data.created_at,
        updated_at=data.updated_at or data.created_at,
        survey="delighted-nps",
        channel=data.channel or _str(props.get("channel")),
        comment=data.comment if data.comment and data.comment.strip() else None,
        email=data.person.email,
        customer_id=own_id,
        person_id=(person_id or "").strip() or None,
    )
    return Batch(records=[Record(response, raw)])


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value).strip() else None
