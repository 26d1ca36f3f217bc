"""Webhook subscriptions (docs/events.md): register a URL for events (its signing secret shown
once), list, read, delete, rotate the secret, read the delivery log."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.delivery.events import EVENT_TYPES
from nps_sync.store.subscriptions import DELIVERY_LOG_LIMIT, SubscriptionsStore
from nps_sync.web.http import json_response
from nps_sync.web.routes.params import ADMIN

if TYPE_CHECKING:
    from nps_sync.web.api import Services

EventType = Literal[
    "response.received", "detractor.alert", "customer.nps_changed", "aggregate.updated"
]
FilterValue = Annotated[str, Field(min_length=1, max_length=256)]
SubscriptionId = Annotated[str, Path(max_length=64)]


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


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()

    def subscriptions() -> SubscriptionsStore:
        store = services().subscriptions
        if store is None:
            raise StorageUnavailable("subscriptions are not configured (SUBSCRIPTIONS_TABLE)")
        return store

    @routes.post("/subscriptions", security=ADMIN, summary="Subscribe a URL to events")
    def create_subscription(request: SubscriptionRequest) -> Response[NewSecret]:
        services().vet_url(request.url)  # BlockedUrl: 422 with the reason
        created = subscriptions().create(request.url, list(request.events), request.filter)
        logger.info("subscription created", extra={"subscription_id": created.id})
        return json_response(201, NewSecret(**created.public(), secret=created.secret))

    @routes.get("/subscriptions", security=ADMIN, summary="Every subscription (no secrets)")
    def list_subscriptions() -> SubscriptionList:
        shown = [SubscriptionView(**s.public()) for s in subscriptions().all()]
        return SubscriptionList(subscriptions=shown)

    @routes.get("/subscriptions/<subscription_id>", security=ADMIN, summary="One subscription")
    def get_subscription(subscription_id: SubscriptionId) -> SubscriptionView:
        return SubscriptionView(**subscriptions().get(subscription_id).public())

    @routes.delete("/subscriptions/<subscription_id>", security=ADMIN, summary="Unsubscribe")
    def delete_subscription(subscription_id: SubscriptionId) -> Response[None]:
        subscriptions().delete(subscription_id)
        logger.info("subscription deleted", extra={"subscription_id": subscription_id})
        return json_response(204, "")

    @routes.post(
        "/subscriptions/<subscription_id>/rotate",
        security=ADMIN,
        summary="New signing secret; the old one signs too for 24 h",
    )
    def rotate_secret(subscription_id: SubscriptionId) -> NewSecret:
        rotated = subscriptions().rotate(subscription_id)
        logger.info("subscription secret rotated", extra={"subscription_id": subscription_id})
        return NewSecret(**rotated.public(), secret=rotated.secret)

    @routes.get(
        "/subscriptions/<subscription_id>/deliveries",
        security=ADMIN,
        summary="The subscription's last deliveries",
    )
    def list_deliveries(
        subscription_id: SubscriptionId,
        limit: Annotated[int, Query(ge=1, le=DELIVERY_LOG_LIMIT)] = DELIVERY_LOG_LIMIT,
    ) -> DeliveryLog:
        store = subscriptions()
        store.get(subscription_id)  # 404 for an unknown subscription
        return DeliveryLog(
            subscription_id=subscription_id, deliveries=store.deliveries(subscription_id, limit)
        )

    return routes
