"""What several routes declare alike: the bearer security requirement, and the query parameters
of a segment (dimension, value) and of a range (granularity, from/to, or a window of days)."""

from datetime import date
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

SECURITY = [{"bearer": []}]

Granularity = Literal["day", "week", "month", "quarter", "year", "all"]

Dimension = Annotated[str, Query(max_length=40)]
Value = Annotated[str | None, Query(max_length=512)]
GranularityQuery = Annotated[Granularity | None, Query()]
From = Annotated[date | None, Query(alias="from")]
To = Annotated[date | None, Query()]
Window = Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,2}d$")]
