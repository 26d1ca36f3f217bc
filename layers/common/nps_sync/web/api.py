"""The query API (ApiFunction): GET /nps, GET and DELETE /customers/{key}, webhook
subscriptions (/subscriptions, docs/events.md), GET /openapi.json.

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
from pydantic import BaseModel, ConfigDict, Field

from nps_sync.core.errors import (
    BadRequest,
    InvalidPayload,
    NotFound,
    StorageUnavailable,
    Unauthorized,
)
from nps_sync.core.observability import logger
from nps_sync.delivery.events import EVENT_TYPES
from nps_sync.delivery.ssrf import Target, vet
from nps_sync.query import overview
from nps_sync.query.customers import customer_view, erase_customer
from nps_sync.query.series import AggregateReader, nps_series
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.response_index import ResponseIndex
from nps_sync.store.subscriptions import DELIVERY_LOG_LIMIT, SubscriptionsStore
from nps_sync.web import dashboard
from nps_sync.web.http import error_response, register_error_handlers
from nps_sync.web.outcome_routes import register as register_outcomes

PUBLIC_PATHS = {"/openapi.json", *dashboard.PATHS}  # the dashboard page, not its data
SECURITY = [{"bearer": []}]
Granularity = Literal["day", "week", "month", "quarter", "year", "all"]
EventType = Literal[
    "response.received", "detractor.alert", "customer.nps_changed", "aggregate.updated"
]
FilterValue = Annotated[str, Field(min_length=1, max_length=256)]


@dataclass
class Services:
    aggregates: AggregatesStore
    records: CustomerRecords
    dimensions: tuple[str, ...]
    tokens: Callable[[], list[str]]
    today: Callable[[], date] = lambda: datetime.now(UTC).date()
    subscriptions: SubscriptionsStore | None = None
    vet_url: Callable[[str], Target] = vet  # the SSRF guard (local mode allows loopback)
    # Dimensions GET /nps answers from an index of the responses instead of counters.
    index: AggregateReader | None = None
    read_dimensions: tuple[str, ...] = ()

    def reader(self, dimension: str) -> AggregateReader:
        if dimension in self.read_dimensions and dimension not in self.dimensions:
            return self.index
        return self.aggregates

    @property
    def queryable(self) -> tuple[str, ...]:
        return self.dimensions + tuple(d for d in self.read_dimensions if d not in self.dimensions)


def default_services() -> Services:
    from nps_sync.core.settings import aggregate_settings, fanout_settings
    from nps_sync.store.secrets import load

    settings = aggregate_settings()
    fanout = fanout_settings()
    return Services(
        aggregates=AggregatesStore(settings.aggregates_table),
        records=CustomerRecords(settings.records_table),
        dimensions=settings.aggregate_dimensions,
        index=ResponseIndex(settings.records_table),
        read_dimensions=settings.read_dimensions,
        tokens=lambda: load(settings).api_tokens,
        subscriptions=(
            SubscriptionsStore(fanout.subscriptions_table) if fanout.subscriptions_table else None
        ),
        vet_url=lambda url: vet(url, allow_local=fanout.allow_local_subscribers),
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


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=8, max_length=2048)]
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
    # dimension/attribute -> value (or any of several): only events whose data match
    filter: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
            FilterValue | Annotated[list[FilterValue], Field(min_length=1, max_length=20)],
        ],
        Field(max_length=10),
    ] = {}


class SubscriptionView(BaseModel):
    model_config = ConfigDict(extra="allow")  # previous_secret_expires_at during a rotation

    id: str
    url: str
    events: list[str]
    filter: dict[str, Any]
    created_at: str


class NewSecret(SubscriptionView):
    secret: str  # shown once


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionView]


class DeliveryLog(BaseModel):
    subscription_id: str
    deliveries: list[dict[str, Any]]


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
        if any(e.get("loc", ("",))[0] == "body" for e in error.errors()):
            return error_response(InvalidPayload("; ".join(reasons)))  # a JSON body: 422
        return error_response(BadRequest("; ".join(reasons)))

    register_outcomes(app, services, SECURITY)  # GET /outcomes, /outcomes/at-risk

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
            current.reader(dimension),
            current.queryable,
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
        deleted = erase_customer(services().records, unquote(key))  # NotFound: 404
        logger.info("customer erased", extra={"deleted": deleted})  # counts only, never the key
        return Response(
            status_code=202,
            content_type=content_types.APPLICATION_JSON,
            body=Erasure(erased=True, deleted=deleted),
        )

    def subscriptions() -> SubscriptionsStore:
        store = services().subscriptions
        if store is None:
            raise StorageUnavailable("subscriptions are not configured (SUBSCRIPTIONS_TABLE)")
        return store

    @app.post("/subscriptions", security=SECURITY, summary="Subscribe a URL to events")
    def create_subscription(request: SubscriptionRequest) -> Response[NewSecret]:
        services().vet_url(request.url)  # BlockedUrl: 422 with the reason
        created = subscriptions().create(request.url, list(request.events), request.filter)
        logger.info("subscription created", extra={"subscription_id": created.id})
        return Response(
            status_code=201,
            content_type=content_types.APPLICATION_JSON,
            body=NewSecret(**created.public(), secret=created.secret),
        )

    @app.get("/subscriptions", security=SECURITY, summary="Every subscription (no secrets)")
    def list_subscriptions() -> SubscriptionList:
        shown = [SubscriptionView(**s.public()) for s in subscriptions().all()]
        return SubscriptionList(subscriptions=shown)

    @app.get("/subscriptions/<subscription_id>", security=SECURITY, summary="One subscription")
    def get_subscription(
        subscription_id: Annotated[str, Path(max_length=64)],
    ) -> SubscriptionView:
        return SubscriptionView(**subscriptions().get(subscription_id).public())

    @app.delete("/subscriptions/<subscription_id>", security=SECURITY, summary="Unsubscribe")
    def delete_subscription(subscription_id: Annotated[str, Path(max_length=64)]) -> Response[None]:
        subscriptions().delete(subscription_id)
        logger.info("subscription deleted", extra={"subscription_id": subscription_id})
        return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")

    @app.post(
        "/subscriptions/<subscription_id>/rotate",
        security=SECURITY,
        summary="New signing secret; the old one signs too for 24 h",
    )
    def rotate_secret(subscription_id: Annotated[str, Path(max_length=64)]) -> NewSecret:
        rotated = subscriptions().rotate(subscription_id)
        logger.info("subscription secret rotated", extra={"subscription_id": subscription_id})
        return NewSecret(**rotated.public(), secret=rotated.secret)

    @app.get(
        "/subscriptions/<subscription_id>/deliveries",
        security=SECURITY,
        summary="The subscription's last deliveries",
    )
    def list_deliveries(
        subscription_id: Annotated[str, Path(max_length=64)],
        limit: Annotated[int, Query(ge=1, le=DELIVERY_LOG_LIMIT)] = DELIVERY_LOG_LIMIT,
    ) -> DeliveryLog:
        store = subscriptions()
        store.get(subscription_id)  # 404 for an unknown subscription
        return DeliveryLog(
            subscription_id=subscription_id, deliveries=store.deliveries(subscription_id, limit)
        )

    @app.get("/segments", security=SECURITY, summary="A dimension's values, all-time NPS each")
    def get_segments(
        dimension: Annotated[str, Query(max_length=40)],
        limit: Annotated[int, Query(ge=1, le=overview.MAX_SEGMENTS)] = 100,
    ) -> overview.Segments:
        current = services()
        return overview.segments(current.aggregates, current.dimensions, dimension, limit)

    @app.get("/distribution", security=SECURITY, summary="Answers per score 0-10")
    def get_distribution(
        granularity: Annotated[Granularity | None, Query()] = None,
        from_: Annotated[date | None, Query(alias="from")] = None,
        to: Annotated[date | None, Query()] = None,
        window: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,2}d$")] = None,
    ) -> overview.Distribution:
        current = services()
        return overview.distribution(
            current.aggregates,
            current.dimensions,
            current.today(),
            granularity=granularity,
            first=from_,
            last=to,
            window=window,
        )

    @app.get("/detractors", security=SECURITY, summary="The latest detractors, newest first")
    def get_detractors(
        limit: Annotated[int, Query(ge=1, le=overview.MAX_DETRACTORS)] = 20,
    ) -> overview.Detractors:
        return overview.recent_detractors(services().records, limit)

    def dashboard_file(name: str) -> Response:
        found = dashboard.asset(name)
        if found is None:
            raise NotFound("no such dashboard file")
        return Response(
            status_code=200,
            content_type=found.content_type,
            body=found.body,
            headers=dict(dashboard.HEADERS),
        )

    @app.get("/dashboard", include_in_schema=False)
    def get_dashboard():
        return dashboard_file(dashboard.PAGE)

    @app.get(dashboard.TRAILING_SLASH, include_in_schema=False)
    def get_dashboard_with_a_slash():
        return Response(
            status_code=301,
            body="",
            headers={**dashboard.HEADERS, "Location": dashboard.PAGE_FROM_TRAILING_SLASH},
        )

    @app.get("/dashboard/<asset>", include_in_schema=False)
    def get_dashboard_asset(asset: str):
        return dashboard_file(asset)

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
