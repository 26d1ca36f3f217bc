"""GET /nps, a segment's series, and the dashboard's other reads: GET /segments, /distribution
and /detractors (docs/dashboard.md)."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from nps_sync.query import overview
from nps_sync.query.series import NpsSeries, nps_series
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


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()

    @routes.get("/nps", security=SECURITY, summary="NPS series for one segment")
    def get_nps(
        dimension: Dimension = "overall",
        value: Value = None,
        granularity: GranularityQuery = None,
        from_: From = None,
        to: To = None,
        window: Window = None,
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

    @routes.get("/segments", security=SECURITY, summary="A dimension's values, all-time NPS each")
    def get_segments(
        dimension: Dimension,
        limit: Annotated[int, Query(ge=1, le=overview.MAX_SEGMENTS)] = 100,
    ) -> overview.Segments:
        current = services()
        return overview.segments(current.aggregates, current.dimensions, dimension, limit)

    @routes.get("/distribution", security=SECURITY, summary="Answers per score 0-10")
    def get_distribution(
        granularity: GranularityQuery = None,
        from_: From = None,
        to: To = None,
        window: Window = None,
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

    @routes.get("/detractors", security=SECURITY, summary="The latest detractors, newest first")
    def get_detractors(
        limit: Annotated[int, Query(ge=1, le=overview.MAX_DETRACTORS)] = 20,
    ) -> overview.Detractors:
        return overview.recent_detractors(services().records, limit)

    return routes
