"""GET /outcomes and GET /outcomes/at-risk (docs/outcomes.md): churn, renewals and MRR by NPS
category, and the active accounts whose latest answer is a detractor."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from nps_sync.query.outcomes import AtRiskPage, Outcomes, at_risk_page, outcomes_report
from nps_sync.store.outcomes import AtRiskListing, OutcomesStore
from nps_sync.web.routes.params import (
    SECURITY,
    Dimension,
    From,
    GranularityQuery,
    To,
    Value,
    Window,
)

if TYPE_CHECKING:
    from nps_sync.web.api import Services

Order = Literal["mrr", "recent"]
MAX_PAGE = 100


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()
    stores: dict[str, OutcomesStore] = {}

    def store() -> OutcomesStore:
        if "store" not in stores:
            aggregates = services().aggregates
            stores["store"] = OutcomesStore(aggregates.table_name, aggregates.client)
        return stores["store"]

    @routes.get("/outcomes", security=SECURITY, summary="Churn, renewals and MRR by NPS category")
    def get_outcomes(
        dimension: Dimension = "overall",
        value: Value = None,
        granularity: GranularityQuery = None,
        from_: From = None,
        to: To = None,
        window: Window = None,
    ) -> Outcomes:
        current = services()
        return outcomes_report(
            store(),
            current.dimensions,
            current.today(),
            dimension=dimension,
            value=value,
            granularity=granularity,
            first=from_,
            last=to,
            window=window,
        )

    @routes.get(
        "/outcomes/at-risk",
        security=SECURITY,
        summary="Active accounts whose latest answer is a detractor, largest MRR or newest first",
    )
    def get_at_risk(
        dimension: Dimension = "overall",
        value: Value = None,
        order: Annotated[Order, Query()] = "mrr",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> AtRiskPage:
        current = services()
        listing = AtRiskListing(current.records)
        return at_risk_page(listing, current.dimensions, dimension, value, order, limit, cursor)

    return routes
