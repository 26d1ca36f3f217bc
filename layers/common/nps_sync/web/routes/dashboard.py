"""The dashboard's files (GET /dashboard, /dashboard/<asset>): public, with their headers."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from nps_sync.core.errors import NotFound
from nps_sync.web import dashboard as files


def dashboard_file(name: str) -> Response:
    found = files.asset(name)
    if found is None:
        raise NotFound("no such dashboard file")
    return Response(
        status_code=200,
        content_type=found.content_type,
        body=found.body,
        headers=dict(files.HEADERS),
    )


def router() -> Router:
    routes = Router()

    @routes.get("/dashboard", include_in_schema=False)
    def get_dashboard():
        return dashboard_file(files.PAGE)

    @routes.get(files.TRAILING_SLASH, include_in_schema=False)
    def get_dashboard_with_a_slash():
        return Response(
            status_code=301,
            body="",
            headers={**files.HEADERS, "Location": files.PAGE_FROM_TRAILING_SLASH},
        )

    @routes.get("/dashboard/<asset>", include_in_schema=False)
    def get_dashboard_asset(asset: str):
        return dashboard_file(asset)

    return routes
