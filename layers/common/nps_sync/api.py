"""The query API (ApiFunction): GET /nps, GET and DELETE /customers/{key}, GET /openapi.json.

Bearer tokens come from the secrets document (``api_tokens``); every route but the OpenAPI
document needs one. Reads are Query/GetItem, never Scan.
"""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict

from .aggregate_store import AggregatesStore
from .customer_records import CustomerRecords
from .customers import customer_view, erase
from .errors import BadRequest, Unauthorized
from .http import error_response, register_error_handlers
from .observability import logger
from .query import nps_series

PUBLIC_PATHS = {"/openapi.json"}
SECURITY = [{"bearer": []}]
Granularity = Literal["day", "week", "month", "quarter", "year", "all"]


@dataclass
class Services:
    aggregates: AggregatesStore
    records: CustomerRecords
    dimensions: tuple[str, ...]
    tokens: Callable[[], list[str]]
    today: Callable[[], date] = lambda: datetime.now(UTC).date()


def default_services() -> Services:
    from .aggregate_settings import aggregate_settings
    from .secrets import load

    settings = aggregate_settings()
    return Services(
        aggregates=AggregatesStore(settings.aggregates_table),
        records=CustomerRecords(settings.records_table),
        dimensions=settings.aggregate_dimensions,
        tokens=lambda: load(settings).api_tokens,
    )


def authorized(headers: dict[str, str], tokens: list[str]) -> bool:
    header = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    given = given.strip()
    # Compare with every token, constant-time each, so timing does not tell which one matched.
    matches = [hmac.compare_digest(given.encode(), token.encode()) for token in tokens if token]
    return any(matches)


class Bucket(BaseModel):
    period: str
    promoters: int
    passives: int
    detractors: int
    n: int
    nps: float | None
    margin_of_error: float | None
    revenue_weighted_nps: float | None


class NpsSeries(BaseModel):
    model_config = ConfigDict(extra="allow")  # from/to of the range asked for

    dimension: str
    value: str
    granularity: str
    window: str | None = None
    buckets: list[Bucket]


class Erasure(BaseModel):
    erased: bool
    deleted: dict[str, int]


def resolver(services_factory: Callable[[], Services] = default_services) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app)
    cache: dict[str, Services] = {}

    def services() -> Services:
        if "services" not in cache:
            cache["services"] = services_factory()
        return cache["services"]

    def is_authorized() -> bool:
        return authorized(app.current_event.headers or {}, services().tokens())

    def authenticate(app_, next_middleware):
        if app_.current_event.path not in PUBLIC_PATHS and not is_authorized():
            raise Unauthorized("missing or invalid bearer token")
        return next_middleware(app_)

    app.use(middlewares=[authenticate])

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response:
        # Validation runs before the middlewares: still answer 401 first to a stranger.
        if app.current_event.path not in PUBLIC_PATHS and not is_authorized():
            return error_response(Unauthorized("missing or invalid bearer token"))
        reasons = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in error.errors()[:5]
        ]
        return error_response(BadRequest("; ".join(reasons)))

    @app.get("/nps", security=SECURITY, summary="NPS series for one segment")
    def get_nps(
        dimension: Annotated[str, Query(max_length=40)] = "overall",
        value: Annotated[str | None, Query(max_length=512)] = None,
        granularity: Annotated[Granularity | None, Query()] = None,
        from_: Annotated[date | None, Query(alias="from")] = None,
        to: Annotated[date | None, Query()] = None,
        window: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,2}d$")] = None,
    ) -> NpsSeries:
        current = services()
        return nps_series(
            current.aggregates,
            current.dimensions,
            current.today(),
            dimension=dimension,
            value=value,
            granularity=granularity,
            first=from_,
            last=to,
            window=window,
        )

    @app.get("/customers/<key>", security=SECURITY, summary="A customer's profile and answers")
    def get_customer(key: Annotated[str, Path(max_length=512)]) -> dict[str, Any]:
        return customer_view(services().records, unquote(key))

    @app.delete("/customers/<key>", security=SECURITY, summary="Erase a customer")
    def delete_customer(key: Annotated[str, Path(max_length=512)]) -> Response[Erasure]:
        deleted = erase(services().records, unquote(key))
        logger.info("customer erased", extra={"deleted": deleted})  # counts only, never the key
        return Response(
            status_code=202,
            content_type=content_types.APPLICATION_JSON,
            body=Erasure(erased=True, deleted=deleted),
        )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi():
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body=app.get_openapi_json_schema(
                title="nps-sync API",
                version="1.0.0",
                security_schemes={"bearer": HTTPBearer()},
            ),
        )

    return app
