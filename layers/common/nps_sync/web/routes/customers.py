"""GET /customers/{key}, one customer's view, and DELETE /customers/{key}, the erasure."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel

from nps_sync.core.observability import logger
from nps_sync.query.customers import customer_view, erase_customer, erasure_keys
from nps_sync.web.http import json_response
from nps_sync.web.routes.params import ADMIN

if TYPE_CHECKING:
    from nps_sync.web.api import Services

CustomerKey = Annotated[str, Path(max_length=512)]


class Erasure(BaseModel):
    erased: bool
    deleted: dict[str, int]


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()

    @routes.get("/customers/<key>", security=ADMIN, summary="A customer's profile and answers")
    def get_customer(key: CustomerKey) -> dict[str, Any]:
        return customer_view(services().records, unquote(key))

    @routes.delete("/customers/<key>", security=ADMIN, summary="Erase a customer")
    def delete_customer(key: CustomerKey) -> Response[Erasure]:
        found = services()
        if found.destination_clearing is not None:  # first: the erasure deletes the links
            objects = found.destination_clearing.queue_clears(
                [
                    item
                    for customer_key in erasure_keys(found.records, unquote(key))
                    for item in found.records.by_customer(customer_key)
                ]
            )
            logger.info("destination fields to clear", extra={"objects": objects})
        deleted = erase_customer(found.records, unquote(key))  # NotFound: 404
        logger.info("customer erased", extra={"deleted": deleted})  # counts only, never the key
        return json_response(202, Erasure(erased=True, deleted=deleted))

    return routes
