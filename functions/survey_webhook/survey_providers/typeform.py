"""Typeform: ``Typeform-Signature: sha256=<base64 HMAC-SHA256(raw body)>``, no timestamp.

There is no replay window to check; a re-delivery carries the same ``form_response.token``
and stores nothing new. The NPS question is the answer whose field type is ``nps``, or an
``opinion_scale`` question whose ``ref`` (or id) is listed in NPS_QUESTIONS["typeform"].
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nps_sync.core.errors import InvalidPayload
from nps_sync.core.identity import customer_key
from nps_sync.core.models import EventTime, Response
from nps_sync.core.signing import header, typeform_verify
from nps_sync.ingest.receive import Batch, Record, load_json, signing_secrets

EMAIL_FIELDS = ("email", "e_mail", "customer_email", "user_email")
ID_FIELDS = ("customer_id", "user_id", "account_id", "id")


def verify(request, credentials, now, settings) -> None:
    given = header(request.headers, "Typeform-Signature")
    typeform_verify(signing_secrets(credentials), given, request.body)


class AnswerField(BaseModel):
    id: str | None = None
    type: str | None = None
    ref: str | None = None


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    field: AnswerField = Field(default_factory=AnswerField)
    email: str | None = None  # on answers of type "email"; anything else is not Typeform's


class FormResponse(BaseModel):
    form_id: str = Field(min_length=1)
    token: str = Field(min_length=1, max_length=512)
    submitted_at: EventTime
    hidden: dict[str, Any] | None = None
    answers: list[Answer] = []


class Payload(BaseModel):
    event_type: str
    form_response: FormResponse | None = None


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    payload = Payload.model_validate(raw)
    if payload.event_type != "form_response" or payload.form_response is None:
        return Batch(ignored=1)
    form = payload.form_response
    nps_refs = set(settings.nps_questions.get("typeform", []))
    nps = next((a for a in form.answers if _is_nps(a, nps_refs)), None)
    if nps is None:
        return Batch(ignored=1)  # a form without an NPS answer: acknowledged, not a 0
    score = getattr(nps, "number", None)
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
        raise InvalidPayload("the NPS answer is not a whole number from 0 to 10")
    hidden = {str(k).lower(): v for k, v in (form.hidden or {}).items()}
    email = _first(hidden, EMAIL_FIELDS) or next(
        (a.email for a in form.answers if a.type == "email" and a.email), None
    )
    own_id = _first(hidden, ID_FIELDS)
    key = customer_key(email=email, customer_id=own_id, provider="typeform", provider_id=form.token)
    comment_refs = set(settings.comment_questions.get("typeform", []))
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
    text = getattr(chosen, "text", None) if chosen else None
    return text[:20_000] if isinstance(text, str) and text.strip() else None
