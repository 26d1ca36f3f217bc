"""GET /nps, a segment's series, and the dashboard's other reads: GET /segments, /distribution
and /detractors (docs/dashboard.md)."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from nps_sync.query import overview
from nps_sync.query.ranges import SeriesQuery
from nps_sync.query.series import NpsSeries, nps_series
from nps_sync.web.routes.params import (
    READ,
    Dimension,
    From,
    GranularityQuery,
    To,
    Window,
    segment_read,
)

if TYPE_CHECKING:
    from nps_sync.web.api import Services


def router(services: "Callable[[], Services]") -> Router:
    routes = Router()

    def read_nps(query: SeriesQuery) -> NpsSeries:
        current = services()
        return nps_series(
            current.reader(query.dimension), current.queryable, current.today(), query
        )

    segment_read(routes, "/nps", "NPS series for one segment", "get_nps", NpsSeries, read_nps)

    @routes.get("/segments", security=READ, summary="A dimension's values, all-time NPS each")
    def get_segments(
        dimension: Dimension,
        limit: Annotated[int, Query(ge=1, le=overview.MAX_SEGMENTS)] = 100,
    ) -> overview.Segments:
        current = services()
        return overview.segments(current.aggregates, current.dimensions, dimension, limit)

    @routes.get("/distribution", security=READ, summary="Answers per score 0-10")
    def get_distribution(
        granularity: GranularityQuery = None,
        from_: From = None,
        to: To = None,
        window: Window = None,
    ) -> overview.Distribution:
        current = services()
        query = SeriesQuery(granularity=granularity, first=from_, last=to, window=window)
        return overview.distribution(current.aggregates, current.dimensions, current.today(), query)

    @routes.get("/detractors", security=READ, summary="The latest detractors, newest first")
    def get_detractors(
        limit: Annotated[int, Query(ge=1, le=overview.MAX_DETRACTORS)] = 20,
    ) -> overview.Detractors:
        return overview.recent_detractors(services().records, limit)

    return routes
