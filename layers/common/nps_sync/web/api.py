"""The query API (ApiFunction): one resolver joining a powertools ``Router`` per area
(``nps_sync.web.routes``: GET /nps and the dashboard's reads, GET and DELETE /customers/{key},
webhook subscriptions, CRM/billing destinations, outcomes, the dashboard's files) and GET
/openapi.json.

Bearer tokens come from the secrets document (``api_tokens``), each with a scope; every route
but the OpenAPI document and the dashboard's files needs one, and declares in its security
requirement the scope it needs (``nps_sync.web.routes.params``: ``read`` or ``admin``, which
includes ``read``). No token, or an unknown one: 401; a token without the scope: 403. Reads
are Query/GetItem, never Scan.
"""

import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from nps_sync.core.errors import (
    BadRequest,
    Forbidden,
    InvalidPayload,
    StorageUnavailable,
    Unauthorized,
)
from nps_sync.delivery.outbound import DeliveryQueue
from nps_sync.delivery.ssrf import Target, vet
from nps_sync.destinations.base import Check
from nps_sync.destinations.erasure import DestinationClearing
from nps_sync.query.series import AggregateReader
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.destinations import Destination, DestinationsStore
from nps_sync.store.response_index import ResponseIndex
from nps_sync.store.secrets import ApiToken
from nps_sync.store.subscriptions import SubscriptionsStore
from nps_sync.web import dashboard
from nps_sync.web.http import error_response, json_response, register_error_handlers
from nps_sync.web.routes import customers, destinations, nps, outcomes, subscriptions
from nps_sync.web.routes import dashboard as dashboard_routes
from nps_sync.web.routes.params import BEARER, SCOPES, SCOPES_DESCRIPTION

PUBLIC_PATHS = {"/openapi.json", *dashboard.PATHS}  # the dashboard page, not its data


def ephemeral_key() -> Callable[[], bytes]:
    """A cursor key of one Services only (tests): its cursors do not outlive it."""
    key = os.urandom(32)
    return lambda: key


def unconfigured_check(destination: Destination) -> Check:
    raise StorageUnavailable("destination clients are not configured")


@dataclass
class Services:
    aggregates: AggregatesStore
    records: CustomerRecords
    dimensions: tuple[str, ...]
    tokens: Callable[[], Sequence[str | ApiToken]]  # a bare string is an admin token
    today: Callable[[], date] = lambda: datetime.now(UTC).date()
    subscriptions: SubscriptionsStore | None = None
    destinations: DestinationsStore | None = None
    # DELETE /customers/{key} clears what we wrote in each destination (docs/destinations.md)
    destination_clearing: DestinationClearing | None = None
    # POST /destinations/{id}/test: the destination's client checks credentials and fields
    destination_check: Callable[[Destination], Check] = field(default=unconfigured_check)
    vet_url: Callable[[str], Target] = vet  # the SSRF guard (local mode allows loopback)
    # Dimensions GET /nps answers from an index of the responses instead of counters.
    index: AggregateReader | None = None
    read_dimensions: tuple[str, ...] = ()
    # Seals GET /outcomes/at-risk cursors: the same in every container (the secrets').
    cursor_key: Callable[[], bytes] = field(default_factory=ephemeral_key)

    def reader(self, dimension: str) -> AggregateReader:
        if dimension in self.read_dimensions and dimension not in self.dimensions:
            return self.index
        return self.aggregates

    @property
    def queryable(self) -> tuple[str, ...]:
        return self.dimensions + tuple(d for d in self.read_dimensions if d not in self.dimensions)


def default_services() -> Services:
    from nps_sync.core.settings import aggregate_settings, fanout_settings
    from nps_sync.destinations import clients
    from nps_sync.store import aws
    from nps_sync.store.secrets import load

    settings = aggregate_settings()
    fanout = fanout_settings()
    # One DynamoDB client for every store: each further client costs the first request ~3 ms.
    dynamodb = aws.client("dynamodb")
    table = fanout.subscriptions_table
    destinations = DestinationsStore(table, dynamodb) if table else None
    return Services(
        aggregates=AggregatesStore(settings.aggregates_table, dynamodb),
        records=CustomerRecords(settings.records_table, dynamodb),
        dimensions=settings.aggregate_dimensions,
        index=ResponseIndex(settings.records_table, dynamodb),
        read_dimensions=settings.read_dimensions,
        tokens=lambda: load(settings).api_tokens,
        cursor_key=lambda: load(settings).cursor_secret(),
        subscriptions=SubscriptionsStore(table, dynamodb) if table else None,
        destinations=destinations,
        destination_check=lambda destination: clients.check(destination),
        destination_clearing=(
            DestinationClearing(destinations, DeliveryQueue(fanout.destination_queue_url))
            if destinations is not None and fanout.destination_queue_url
            else None
        ),
        vet_url=lambda url: vet(url, allow_local=fanout.allow_local_subscribers),
    )


def bearer_token(headers: dict[str, str], tokens: Sequence[str | ApiToken]) -> ApiToken | None:
    """The token the request's bearer credentials name, None for none or an unknown one."""
    header = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    given_bytes = given.strip().encode("utf-8", "surrogatepass")
    known = [ApiToken.of(entry) for entry in tokens if entry]
    # Compare with every token, constant-time each, so timing does not tell which one matched.
    matches = [hmac.compare_digest(given_bytes, token.token.encode()) for token in known]
    return next((token for token, match in zip(known, matches, strict=True) if match), None)


def required_scope(route: Route) -> str:
    """The scope the matched route declares in its security requirement; a route that
    declares none needs ``admin`` (fail closed)."""
    declared = [scope for need in route.security or () for scope in need.get(BEARER, ())]
    return next((scope for scope in declared if scope in SCOPES), "admin")


def resolver(services_factory: Callable[[], Services] = default_services) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app)
    cache: dict[str, Services] = {}

    def services() -> Services:
        if "services" not in cache:
            cache["services"] = services_factory()
        return cache["services"]

    def check_token() -> None:
        """401 without a known token, 403 when its scope does not cover the matched route."""
        if app.current_event.path in PUBLIC_PATHS:
            return
        token = bearer_token(app.current_event.headers or {}, services().tokens())
        if token is None:
            raise Unauthorized("missing or invalid bearer token")
        route = app.context["_route"]  # the resolver's matched route (powertools)
        needed = required_scope(route)
        if not token.allows(needed):
            raise Forbidden(
                f"{route.method} {route.openapi_path} needs a token with scope {needed!r}; "
                f"this one has {token.scope!r}"
            )

    def authenticate(app_, next_middleware):
        check_token()
        return next_middleware(app_)

    app.use(middlewares=[authenticate])

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response:
        # Validation runs before the middlewares: still answer 401 first to a stranger, and
        # 403 to a token that may not call the route, before telling it what is invalid.
        try:
            check_token()
        except (Unauthorized, Forbidden) as refused:
            return error_response(refused)
        reasons = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in error.errors()[:5]
        ]
        if any(e.get("loc", ("",))[0] == "body" for e in error.errors()):
            return error_response(InvalidPayload("; ".join(reasons)))  # a JSON body: 422
        return error_response(BadRequest("; ".join(reasons)))

    for area in (outcomes, nps, customers, subscriptions, destinations):
        app.include_router(area.router(services))
    app.include_router(dashboard_routes.router())

    @app.get("/openapi.json", include_in_schema=False)
    def openapi():
        # powertools' OpenAPI models: ~100 ms to import, needed by this route only
        from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

        document = app.get_openapi_json_schema(
            title="nps-sync API",
            version="1.0.0",
            security_schemes={BEARER: HTTPBearer(description=SCOPES_DESCRIPTION)},
        )
        return json_response(200, document)

    return app
