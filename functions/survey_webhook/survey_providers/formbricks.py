"""Formbricks: Standard Webhooks headers; answers keyed by question id under ``data.data``.

``responseCreated``/``responseUpdated``/``responseFinished`` describe the same response as
the respondent goes on, so they are upserted by ``data.id`` with ``updatedAt`` as the version.
The NPS question's id comes from NPS_QUESTIONS["formbricks"]. Hidden fields share
``data.data`` with the answers; contact attributes carry the identity set by the SDK.
"""

from typing import Any

import msgspec

from nps_sync.core.errors import InvalidPayload
from nps_sync.core.identity import customer_key
from nps_sync.core.models import EventTime, Key, Response
from nps_sync.core.schema import validate
from nps_sync.ingest.receive import Batch, Record, load_json, verify_standard
from survey_providers import in_body_names

RESPONSE_EVENTS = {"responseCreated", "responseUpdated", "responseFinished"}
# The record bounds its times when it is built; its refusal names Formbricks' fields.
BODY_NAMES = {"submitted_at": "data.createdAt", "updated_at": "data.updatedAt"}


verify = verify_standard


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    userId: str | None = None  # noqa: N815 - Formbricks' own name


class FormbricksResponse(msgspec.Struct, frozen=True, kw_only=True):
    id: Key
    surveyId: str | None = None  # noqa: N815
    createdAt: EventTime  # noqa: N815
    updatedAt: EventTime | None = None  # noqa: N815
    contact: Contact | None = None
    contactAttributes: dict[str, Any] | None = None  # noqa: N815
    data: dict[str, Any] = {}
    meta: dict[str, Any] | None = None


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    event: str
    data: dict[str, Any] | None = None


class ResponsePayload(Payload, frozen=True, kw_only=True):
    """A response event's body: validated with its response in one pass."""

    data: FormbricksResponse | None = None


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    event = raw.get("event") if isinstance(raw, dict) else None
    responds = isinstance(event, str) and event in RESPONSE_EVENTS
    payload = validate(raw, ResponsePayload if responds else Payload)
    if not responds or payload.data is None:
        return Batch(ignored=1)  # the "testEndpoint" ping and events we do not use
    data = payload.data
    question = next(
        (q for q in settings.nps_questions.get("formbricks", []) if q in data.data), None
    )
    value = data.data.get(question) if question else None
    if value is None or value == "":
        return Batch(ignored=1)  # no NPS answer (yet): acknowledged, not stored as a 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
        raise InvalidPayload(f"data.data.{question}: the NPS answer is not a whole number 0-10")
    fields = {**(data.contactAttributes or {}), **data.data}
    email = _text(fields, "email")
    own_id = (
        _text(fields, "customer_id")
        or _text(fields, "userId")
        or (data.contact.userId if data.contact else None)
    )
    contact_id = data.contact.id if data.contact else None
    comment_ids = settings.comment_questions.get("formbricks", [])
    try:
        response = Response(
            provider="formbricks",
            response_id=data.id,
            customer_key=customer_key(email, own_id, "formbricks", contact_id or data.id),
            score=value,
            submitted_at=data.createdAt,
            updated_at=data.updatedAt or data.createdAt,
            survey=data.surveyId,
            channel=_text(fields, "channel") or _text(data.meta or {}, "source"),
            comment=next((_text(data.data, q) for q in comment_ids if _text(data.data, q)), None),
            email=email,
            customer_id=own_id,
            person_id=(contact_id or "").strip() or None,
        )
    except InvalidPayload as error:
        raise in_body_names(error, BODY_NAMES) from None
    return Batch(records=[Record(response, raw)])


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None
