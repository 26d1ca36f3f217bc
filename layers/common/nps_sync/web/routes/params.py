"""What several routes declare alike: the bearer security requirement with the scope the route
needs, and the query parameters of a segment (dimension, value) and of a range (granularity,
from/to, or a window of days)."""

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from nps_sync.query.ranges import SeriesQuery
from nps_sync.store.secrets import GRANTS

BEARER = "bearer"
SCOPES = tuple(GRANTS)
# A route's security requirement names its scope (an OpenAPI 3.1 role); nps_sync.web.api
# checks the token's scope against it, so the document and the check cannot differ.
READ = [{BEARER: ["read"]}]  # aggregates and the dashboard's lists
ADMIN = [{BEARER: ["admin"]}]  # one customer's data, erasure, subscriptions
SCOPES_DESCRIPTION = (
    "A token from api_tokens in the secrets. Scope `read`: the aggregates and the dashboard's "
    "reads. Scope `admin` (includes read): a customer's profile and answers, erasure, webhook "
    "subscriptions. Each operation's security requirement names the scope it needs; a token "
    "without it is answered 403 insufficient_scope."
)

Granularity = Literal["day", "week", "month", "quarter", "year", "all"]

Dimension = Annotated[str, Query(max_length=40)]
Value = Annotated[str | None, Query(max_length=512)]
GranularityQuery = Annotated[Granularity | None, Query()]
From = Annotated[date | None, Query(alias="from")]
To = Annotated[date | None, Query()]
Window = Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,2}d$")]


def segment_read(routes: Any, path: str, summary: str, name: str, answer: Any, read: Callable):
    """Register GET ``path`` taking a segment and a range (GET /nps, /outcomes): one
    declaration of the six parameters, ``read(SeriesQuery)`` answering. ``name`` names the
    operation (the OpenAPI operationId comes from it)."""

    def handler(
        dimension: Dimension = "overall",
        value: Value = None,
        granularity: GranularityQuery = None,
        from_: From = None,
        to: To = None,
        window: Window = None,
    ):
        return read(SeriesQuery(dimension, value, granularity, from_, to, window))

    handler.__name__ = handler.__qualname__ = name
    handler.__annotations__["return"] = answer
    return routes.get(path, security=READ, summary=summary)(handler)
