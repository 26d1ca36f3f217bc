"""The one place that maps domain errors to HTTP answers, for every API function."""

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

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


def json_response(status: int, body: Any) -> Response:
    """A JSON answer. A dict is written here; a model (or a document already written) is left to
    the resolver, which serializes it as the route's answer model says."""
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":"))
    return Response(status_code=int(status), content_type=content_types.APPLICATION_JSON, body=body)


def status_of(error: NpsSyncError) -> HTTPStatus:
    """The status of the nearest mapped class in the error's MRO, so that a subclass answers
    like its parent (as starlette looks up exception handlers); 400 for none."""
    mapped = (STATUS[cls] for cls in type(error).__mro__ if cls in STATUS)
    return next(mapped, HTTPStatus.BAD_REQUEST)


def error_response(error: NpsSyncError) -> Response:
    status = status_of(error)
    # The message names the problem, never the payload's values (they may be personal data).
    logger.info("request refused", extra={"error": error.code, "status": int(status)})
    metrics.add_metric(name="RequestsRefused", unit="Count", value=1)
    if isinstance(error, StorageUnavailable):
        logger.exception("storage failed")
    return json_response(status, {"error": error.code, "message": error.message})


def register_error_handlers(app) -> None:
    app.exception_handler(NpsSyncError)(error_response)
