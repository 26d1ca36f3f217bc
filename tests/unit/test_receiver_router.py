"""The webhook functions' own router (nps_sync.web.receivers.Receiver) answers as powertools'
APIGatewayHttpResolver, which the query API still uses and which the receivers stopped
importing for their cold start (docs/decisions.md): the same paths match, the same 404."""

import json

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from nps_sync.web.receivers import Receiver


def event(method: str, path: str, stage: str = "$default") -> dict:
    raw = path if stage == "$default" else f"/{stage}{path}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": raw, "sourceIp": "127.0.0.1"},
            "domainName": "example.com",
            "stage": stage,
        },
        "body": "{}",
        "isBase64Encoded": False,
    }


def powertools() -> APIGatewayHttpResolver:
    """The resolver as the receivers used it: one route, answering the provider it matched."""
    app = APIGatewayHttpResolver()

    @app.post("/webhooks/survey/<provider>")
    def post(provider: str):
        return {"provider": provider}

    return app


class Matched(Exception):
    pass


class Probe(Receiver):
    """The receiver, stopped where it has matched: the provider it would receive for."""

    def post(self, event, provider):
        raise Matched(provider)


PATHS = [
    "/webhooks/survey/generic",
    "/webhooks/survey/type-form_2",
    "/webhooks/survey/a:b@c,d;e=f+g&h$i",
    "/webhooks/survey/%41",
    "/webhooks/survey/",
    "/webhooks/survey/a/b",
    "/webhooks/crm/generic",
    "/webhooks/survey/generic/",
    "/webhooks/survey/a?b",
    "/other",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["POST", "GET", "post"])
@pytest.mark.parametrize("stage", ["$default", "prod"])
def test_a_path_matches_exactly_when_the_resolver_matched_it(path, method, stage):
    theirs = powertools().resolve(event(method, path, stage), None)
    try:
        ours = Probe("survey", {}).resolve(event(method, path, stage), None)
        provider = None
    except Matched as matched:
        ours, provider = None, matched.args[0]
    if theirs["statusCode"] == 404:
        assert ours is not None and provider is None
        assert ours["statusCode"] == 404
        assert json.loads(ours["body"]) == json.loads(theirs["body"])
        assert ours["headers"]["Content-Type"] == theirs["headers"]["Content-Type"]
    else:
        assert provider == json.loads(theirs["body"])["provider"]
