"""CRM and billing destinations (docs/destinations.md): register one (admin), list, read,
delete, check its credentials and fields, read its write log. Credentials are never sent or
shown: a destination names the key of the provider secrets that holds them."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.destinations import fields as fields_
from nps_sync.store.destinations import LOG_LIMIT, DestinationsStore
from nps_sync.web.http import json_response
from nps_sync.web.routes.params import ADMIN, READ

if TYPE_CHECKING:
    from nps_sync.web.api import Services

Kind = Literal["hubspot", "salesforce", "stripe", "chargebee"]
Logical = Literal[tuple(fields_.FIELDS)]  # type: ignore[valid-type]
FieldName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")]
FilterValue = Annotated[str, Field(min_length=1, max_length=256)]
DestinationId = Annotated[str, Path(max_length=64)]


class DestinationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    # the key under ``destinations`` in the provider secrets that holds the credentials
    credentials: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    fields: Annotated[dict[Logical, FieldName], Field(max_length=len(fields_.FIELDS))] = {}
    include_comment: bool = False
    window_days: Annotated[int, Field(ge=1, le=730)] = 90
    filter: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
            FilterValue | Annotated[list[FilterValue], Field(min_length=1, max_length=20)],
        ],
        Field(max_length=10),
    ] = {}


class DestinationView(BaseModel):
    id: str
    kind: str
    credentials: str
    fields: dict[str, str]  # every field written, defaults filled in
    include_comment: bool
    window_days: int
    filter: dict[str, Any]
    created_at: str
    last_success_at: str | None = None
    last_failure_at: str | None = None


class DestinationList(BaseModel):
    destinations: list[DestinationView]


class WriteLog(BaseModel):
    destination_id: str
    writes: list[dict[str, Any]]


class CheckView(BaseModel):
    ok: bool
    missing: list[str]
    created: list[str]
    message: str


class Health(BaseModel):
    id: str
    kind: str
    last_success_at: str | None
    last_failure_at: str | None
    failures_last_day: int
    writes_last_day: int


class HealthList(BaseModel):
    destinations: list[Health]


def _view(destination) -> DestinationView:
    shown = destination.public()
    shown["fields"] = fields_.mapping(
        destination.kind, destination.fields, destination.include_comment
    )
    return DestinationView(**shown)


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()

    def store() -> DestinationsStore:
        found = services().destinations
        if found is None:
            raise StorageUnavailable("destinations are not configured (SUBSCRIPTIONS_TABLE)")
        return found

    @routes.post("/destinations", security=ADMIN, summary="Write NPS into a CRM or billing system")
    def create_destination(request: DestinationRequest) -> Response[DestinationView]:
        created = store().create(
            request.kind,
            request.credentials,
            request.fields,
            request.include_comment,
            request.window_days,
            request.filter,
        )
        logger.info("destination created", extra={"destination_id": created.id})
        return json_response(201, _view(created))

    @routes.get("/destinations", security=ADMIN, summary="Every destination (no credentials)")
    def list_destinations() -> DestinationList:
        return DestinationList(destinations=[_view(d) for d in store().all()])

    @routes.get("/destinations/health", security=READ, summary="Each destination's health")
    def destinations_health() -> HealthList:
        found = services().destinations
        if found is None:  # none can be configured, so none is unhealthy
            return HealthList(destinations=[])
        return HealthList(
            destinations=[Health(id=d.id, kind=d.kind, **found.health(d)) for d in found.all()]
        )

    @routes.get("/destinations/<destination_id>", security=ADMIN, summary="One destination")
    def get_destination(destination_id: DestinationId) -> DestinationView:
        return _view(store().get(destination_id))

    @routes.delete("/destinations/<destination_id>", security=ADMIN, summary="Stop writing")
    def delete_destination(destination_id: DestinationId) -> Response[None]:
        store().delete(destination_id)
        logger.info("destination deleted", extra={"destination_id": destination_id})
        return json_response(204, "")

    @routes.post(
        "/destinations/<destination_id>/test",
        security=ADMIN,
        summary="Check the credentials and that every field exists (HubSpot: create them)",
    )
    def test_destination(destination_id: DestinationId) -> CheckView:
        destination = store().get(destination_id)
        check = services().destination_check(destination)
        logger.info("destination checked", extra={"destination_id": destination_id})
        return CheckView(
            ok=check.ok, missing=check.missing, created=check.created, message=check.message
        )

    @routes.get(
        "/destinations/<destination_id>/writes",
        security=ADMIN,
        summary="The destination's write log, newest first",
    )
    def list_writes(
        destination_id: DestinationId,
        limit: Annotated[int, Query(ge=1, le=LOG_LIMIT)] = LOG_LIMIT,
    ) -> WriteLog:
        found = store()
        found.get(destination_id)  # 404 for an unknown destination
        return WriteLog(destination_id=destination_id, writes=found.log(destination_id, limit))

    return routes
