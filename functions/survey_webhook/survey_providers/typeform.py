"""Typeform: ``Typeform-Signature: sha256=<base64 HMAC-SHA256(raw body)>``, no timestamp.

There is no replay window to check; a re-delivery carries the same ``form_response.token``
and stores nothing new. The NPS question is the answer whose field type is ``nps``, or an
``opinion_scale`` question whose ``ref`` (or id) is listed in NPS_QUESTIONS["typeform"].
"""

from typing import Annotated, Any

import msgspec

from nps_sync.core.errors import InvalidPayload
from nps_sync.core.identity import customer_key
from nps_sync.core.models import EventTime, Key, Response
from nps_sync.core.schema import validate
from nps_sync.core.signing import header, typeform_verify
from nps_sync.ingest.receive import Batch, Record, load_json, signing_secrets
from survey_providers import in_body_names

EMAIL_FIELDS = ("email", "e_mail", "customer_email", "user_email")
ID_FIELDS = ("customer_id", "user_id", "account_id", "id")
# The record's times are the form's submitted_at (its bounds are checked when it is built).
BODY_NAMES = {
    "submitted_at": "form_response.submitted_at",
    "updated_at": "form_response.submitted_at",
}


def verify(request, credentials, now, settings) -> None:
    given = header(request.headers, "Typeform-Signature")
    typeform_verify(signing_secrets(credentials), given, request.body)


class AnswerField(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    type: str | None = None
    ref: str | None = None


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    field: AnswerField = msgspec.field(default_factory=AnswerField)
    email: str | None = None  # on answers of type "email"; anything else is not Typeform's
    # Left as any JSON value: only the NPS answer's number and the comment's text are read,
    # and each is checked there (a wrong one on another answer refuses nothing).
    number: Any = None
    text: Any = None


class FormResponse(msgspec.Struct, frozen=True, kw_only=True):
    form_id: Annotated[str, msgspec.Meta(min_length=1)]
    token: Key
    submitted_at: EventTime
    hidden: dict[str, Any] | None = None
    answers: list[Answer] = []


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str
    form_response: FormResponse | None = None


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    payload = validate(raw, Payload)
    if payload.event_type != "form_response" or payload.form_response is None:
        return Batch(ignored=1)
    form = payload.form_response
    nps_refs = set(settings.nps_questions.get("typeform", []))
    nps = next((a for a in form.answers if _is_nps(a, nps_refs)), None)
    if nps is None:
        return Batch(ignored=1)  # a form without an NPS answer: acknowledged, not a 0
    score = nps.number
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
        raise InvalidPayload("the NPS answer is not a whole number from 0 to 10")
    hidden = {str(k).lower(): v for k, v in (form.hidden or {}).items()}
    email = _first(hidden, EMAIL_FIELDS) or next(
        (a.email for a in form.answers if a.type == "email" and a.email), None
    )
    own_id = _first(hidden, ID_FIELDS)
    key = customer_key(email=email, customer_id=own_id, provider="typeform", provider_id=form.token)
    comment_refs = set(settings.comment_questions.get("typeform", []))
    try:
        response = Response(
            provider="typeform",
            response_id=form.token,
            customer_key=key,
            score=score,
            submitted_at=form.submitted_at,
            updated_at=form.submitted_at,
            survey=form.form_id,
            channel=_first(hidden, ("channel", "touchpoint", "utm_source")),
            comment=_comment(form.answers, comment_refs),
            email=email,
            customer_id=own_id,
        )
    except InvalidPayload as error:
        raise in_body_names(error, BODY_NAMES) from None
    return Batch(records=[Record(response, raw)])


def _is_nps(answer: Answer, refs: set[str]) -> bool:
    if answer.field.type == "nps":
        return True
    return answer.field.type == "opinion_scale" and (
        answer.field.ref in refs or answer.field.id in refs
    )


def _first(values: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = values.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _comment(answers: list[Answer], refs: set[str]) -> str | None:
    texts = [a for a in answers if a.type == "text"]
    chosen = next((a for a in texts if a.field.ref in refs or a.field.id in refs), None)
    if chosen is None and not refs:
        chosen = next((a for a in texts if a.field.type == "long_text"), None)
    text = chosen.text if chosen else None
    return text[:20_000] if isinstance(text, str) and text.strip() else None
