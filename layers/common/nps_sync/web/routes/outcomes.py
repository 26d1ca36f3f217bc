"""GET /outcomes and GET /outcomes/at-risk (docs/outcomes.md): churn, renewals and MRR by NPS
category, and the active accounts whose latest answer is a detractor."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from nps_sync.query.outcomes import AtRiskPage, Outcomes, at_risk_page, outcomes_report
from nps_sync.query.ranges import SeriesQuery
from nps_sync.store.outcomes import AtRiskListing, OutcomesStore
from nps_sync.web.routes.params import READ, Dimension, Value, segment_read

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

    def read_outcomes(query: SeriesQuery) -> Outcomes:
        current = services()
        return outcomes_report(store(), current.dimensions, current.today(), query)

    segment_read(
        routes,
        "/outcomes",
        "Churn, renewals and MRR by NPS category",
        "get_outcomes",
        Outcomes,
        read_outcomes,
    )

    @routes.get(
        "/outcomes/at-risk",
        security=READ,
        summary="Active accounts whose latest answer is a detractor, largest MRR or newest first",
    )
    def get_at_risk(
        dimension: Dimension = "overall",
        value: Value = None,
        order: Annotated[Order, Query()] = "mrr",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> AtRiskPage:
        current = services()
        listing = AtRiskListing(current.records, current.cursor_key())
        return at_risk_page(listing, current.dimensions, dimension, value, order, limit, cursor)

    return routes
