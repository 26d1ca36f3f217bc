"""The one place that maps domain errors to HTTP answers, for every API function.

powertools' event handler is imported where a powertools Response is made (the query API's),
not at import: the webhook receivers answer without it (``Answer``), and its import (every
resolver, every event class) was a fifth of their cold start (issue 17).
"""

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from nps_sync.core.errors import (
    BadRequest,
    BlockedUrl,
    Conflict,
    Forbidden,
    InvalidPayload,
    MalformedBody,
    NotConfigured,
    NotFound,
    NpsSyncError,
    PayloadTooLarge,
    SignatureError,
    StorageUnavailable,
    Unauthorized,
    UnknownProvider,
)
from nps_sync.core.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

JSON = "application/json"  # powertools' content_types.APPLICATION_JSON

STATUS = {
    SignatureError: HTTPStatus.UNAUTHORIZED,
    NotConfigured: HTTPStatus.UNAUTHORIZED,
    Unauthorized: HTTPStatus.UNAUTHORIZED,
    Forbidden: HTTPStatus.FORBIDDEN,
    UnknownProvider: HTTPStatus.NOT_FOUND,
    MalformedBody: HTTPStatus.BAD_REQUEST,
    InvalidPayload: HTTPStatus.UNPROCESSABLE_ENTITY,
    BlockedUrl: HTTPStatus.UNPROCESSABLE_ENTITY,
    PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    StorageUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    BadRequest: HTTPStatus.BAD_REQUEST,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
}


def json_response(status: int, body: Any) -> "Response":
    """A JSON answer. A dict is written here; a model (or a document already written) is left to
    the resolver, which serializes it as the route's answer model says."""
    from aws_lambda_powertools.event_handler import Response

    if isinstance(body, dict):
        body = _dumps(body)
    return Response(status_code=int(status), content_type=JSON, body=body)


def _dumps(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))


@dataclass
class Answer:
    """A webhook receiver's answer, as an HTTP API (payload 2.0) integration returns it: what
    powertools' Response and its HTTP API resolver made of a text body (nps_sync.web.receivers
    answers without them)."""

    status_code: int
    content_type: str
    body: str

    def proxy(self) -> dict[str, Any]:
        return {
            "statusCode": int(self.status_code),
            "body": self.body,
            "isBase64Encoded": False,
            "headers": {"Content-Type": self.content_type},
            "cookies": [],
        }


def json_answer(status: int, body: dict) -> Answer:
    return Answer(int(status), JSON, _dumps(body))


def status_of(error: NpsSyncError) -> HTTPStatus:
    """The status of the nearest mapped class in the error's MRO, so that a subclass answers
    like its parent (as starlette looks up exception handlers); 400 for none."""
    mapped = (STATUS[cls] for cls in type(error).__mro__ if cls in STATUS)
    return next(mapped, HTTPStatus.BAD_REQUEST)


def refusal(error: NpsSyncError) -> tuple[HTTPStatus, dict[str, str]]:
    """The status and body of a refused request, logged and counted."""
    status = status_of(error)
    # The message names the problem, never the payload's values (they may be personal data).
    logger.info("request refused", extra={"error": error.code, "status": int(status)})
    metrics.add_metric(name="RequestsRefused", unit="Count", value=1)
    if isinstance(error, StorageUnavailable):
        logger.exception("storage failed")
    return status, {"error": error.code, "message": error.message}


def error_response(error: NpsSyncError) -> "Response":
    return json_response(*refusal(error))


def error_answer(error: NpsSyncError) -> Answer:
    return json_answer(*refusal(error))


def register_error_handlers(app) -> None:
    app.exception_handler(NpsSyncError)(error_response)
