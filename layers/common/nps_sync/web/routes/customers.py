"""GET /customers/{key}, one customer's view, and DELETE /customers/{key}, the erasure."""

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel

from nps_sync.core.observability import logger
from nps_sync.query.customers import customer_view, erase_customer, erasure_plan
from nps_sync.web.http import json_response
from nps_sync.web.routes.params import ADMIN

if TYPE_CHECKING:
    from nps_sync.web.api import Services

CustomerKey = Annotated[str, Path(max_length=512)]


class Erasure(BaseModel):
    erased: bool  # the erasure is accepted and durable: what is left goes (``complete``)
    complete: bool  # False: it goes on from the queue; GET /customers/{key} tells how far
    deleted: dict[str, int]


def erasure_queue() -> str | None:
    """Where an erasure too large for one request continues (CrmEnrichFunction's queue);
    without one (tests, a bare local run) the request erases everything itself."""
    return os.environ.get("CRM_ENRICHMENT_QUEUE") or None


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()

    @routes.get("/customers/<key>", security=ADMIN, summary="A customer's profile and answers")
    def get_customer(key: CustomerKey) -> dict[str, Any]:
        return customer_view(services().records, unquote(key))

    @routes.delete("/customers/<key>", security=ADMIN, summary="Erase a customer")
    def delete_customer(key: CustomerKey) -> Response[Erasure]:
        found = services()
        # first, while the links are there: the keys of every alias, and their identity items
        plan = erasure_plan(found.records, unquote(key))
        if found.destination_clearing is not None:
            objects = found.destination_clearing.queue_clears(plan.items)
            logger.info("destination fields to clear", extra={"objects": objects})
        # the enrichment queue's module (and powertools' batch utility): erasures only
        from nps_sync.ingest.enqueue import enqueue_erasure

        queue = erasure_queue()
        later = (lambda job: enqueue_erasure(queue, job)) if queue else None
        state = erase_customer(found.records, unquote(key), later, plan)  # NotFound: 404
        # counts only, never the key
        logger.info(
            "customer erased", extra={"deleted": state["deleted"], "complete": state["complete"]}
        )
        return json_response(202, Erasure(erased=True, **state))

    return routes
