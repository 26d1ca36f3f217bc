"""Delighted: ``X-Delighted-Webhook-Signature: sha256=<hex HMAC-SHA256(raw body)>``.

The key is the project's private API key; there is no timestamp. A response arrives as
``survey_response.created`` (score) and again as ``.updated`` (comment, changed score), so it
is upserted by ``event_data.id`` with ``updated_at`` as its version. Only responses that say
``survey_type: "nps"`` count: Delighted also runs CSAT, CES, … surveys with other scales.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from nps_sync.core.errors import InvalidPayload
from nps_sync.core.identity import customer_key
from nps_sync.core.models import Response, Score
from nps_sync.core.schema import validate
from nps_sync.core.signing import delighted_verify, header
from nps_sync.ingest.receive import Batch, Record, load_json, signing_secrets
from survey_providers import in_body_names

RESPONSE_EVENTS = {"survey_response.created", "survey_response.updated"}
ID_PROPERTIES = ("customer id", "customer_id", "customerid", "user id", "user_id", "account id")
# The record bounds its times when it is built; its refusal names Delighted's fields.
BODY_NAMES = {"submitted_at": "event_data.created_at", "updated_at": "event_data.updated_at"}


def verify(request, credentials, now, settings) -> None:
    given = header(request.headers, "X-Delighted-Webhook-Signature")
    delighted_verify(signing_secrets(credentials), given, request.body)


# Delighted sends whole Unix seconds: a number of milliseconds (or a string, a float) is
# refused, not read as some other date. parse makes them times in UTC.
UnixSeconds = Annotated[int, msgspec.Meta(ge=0, lt=10**11)]


class Person(msgspec.Struct, frozen=True, kw_only=True):
    id: str | int | None = None
    email: str | None = None


class SurveyResponse(msgspec.Struct, frozen=True, kw_only=True):
    id: str | int
    survey_type: str | None = None
    score: Score | None = None
    comment: str | None = None
    created_at: UnixSeconds
    updated_at: UnixSeconds | None = None
    person: Person = msgspec.field(default_factory=Person)
    person_properties: dict[str, Any] | None = None
    channel: str | None = None


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str
    event_id: str | None = None
    event_data: dict[str, Any] | None = None


class ResponsePayload(Payload, frozen=True, kw_only=True):
    """A response event's body: validated with its response in one pass."""

    event_data: SurveyResponse | None = None


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    event = raw.get("event_type") if isinstance(raw, dict) else None
    responds = isinstance(event, str) and event in RESPONSE_EVENTS
    payload = validate(raw, ResponsePayload if responds else Payload)
    if not responds or payload.event_data is None:
        return Batch(ignored=1)  # e.g. unsubscribe.created
    data = payload.event_data
    if data.survey_type != "nps" or data.score is None:
        return Batch(ignored=1)  # another survey type, or none said: not an NPS answer
    props = {str(k).strip().lower(): v for k, v in (data.person_properties or {}).items()}
    own_id = next((str(props[k]) for k in ID_PROPERTIES if props.get(k) not in (None, "")), None)
    person_id = None if data.person.id is None else str(data.person.id)
    created = datetime.fromtimestamp(data.created_at, UTC)
    updated = created if data.updated_at is None else datetime.fromtimestamp(data.updated_at, UTC)
    try:
        response = Response(
            provider="delighted",
            response_id=str(data.id),
            customer_key=customer_key(data.person.email, own_id, "delighted", person_id),
            score=data.score,
            submitted_at=created,
            updated_at=updated,
            survey="delighted-nps",
            channel=data.channel or _str(props.get("channel")),
            comment=data.comment if data.comment and data.comment.strip() else None,
            email=data.person.email,
            customer_id=own_id,
            person_id=(person_id or "").strip() or None,
        )
    except InvalidPayload as error:
        raise in_body_names(error, BODY_NAMES) from None
    return Batch(records=[Record(response, raw)])


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value).strip() else None
