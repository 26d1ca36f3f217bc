"""The HTTP API on a local port: each request becomes an API Gateway HTTP API (payload 2.0)
event for the function its route names, and the function's answer becomes the response."""

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .lambdas import LocalFunction
from .template import Route

log = logging.getLogger("local.runtime")
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway HTTP API's own limit
TEXT_TYPES = ("json", "text/", "xml", "x-www-form-urlencoded", "javascript")


def api_event(
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    route: Route,
    params: dict[str, str],
    host: str,
    source_ip: str,
) -> dict[str, Any]:
    parts = urlsplit(target)
    now = datetime.now(UTC)
    content_type = headers.get("content-type", "")
    is_text = not body or any(t in content_type for t in TEXT_TYPES)
    if is_text:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = text_body if is_text else base64.b64encode(body).decode()
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
    return event


def http_answer(result: Any) -> tuple[int, dict[str, str], bytes]:
    """API Gateway's reading of a payload-2.0 answer (a bare value means 200 JSON)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(str(v) for v in values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, data


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog: 5 (the default) resets concurrent senders

    def __init__(
        self, address: tuple[str, int], routes: list[Route], functions: dict[str, LocalFunction]
    ):
        self.routes = [(route, route.pattern()) for route in routes]
        self.functions = functions
        super().__init__(address, _Handler)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self.routes:
            if route.method in (method, "ANY") and (found := pattern.match(path)):
                return route, found.groupdict()
        return None


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Silent: the request line holds the raw path (/customers/<e-mail>); _serve logs the
        route template instead."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http server: %s", format)  # the template only: its arguments quote the path

    def _serve(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_PAYLOAD:
            self._send(
                413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}'
            )
            self._log(f"{self.command} (too large)", 413, "-", started)
            return
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        found = self.server.match(self.command, path)
        if found is None:
            self._send(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
            self._log(f"{self.command} (no route)", 404, "-", started)
            return
        route, params = found
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        host = headers.get("host", "127.0.0.1")
        # What API Gateway adds in front of every integration.
        headers.setdefault("x-forwarded-for", self.client_address[0])
        headers.setdefault("x-forwarded-port", str(self.server.server_address[1]))
        headers.setdefault("x-forwarded-proto", "http")
        event = api_event(
            self.command, self.path, headers, body, route, params, host, self.client_address[0]
        )
        try:
            status, out_headers, data = http_answer(
                self.server.functions[route.function].invoke(event)
            )
        except Exception:
            log.exception("%s failed", route.function)
            status, out_headers, data = (
                500,
                {"content-type": "application/json"},
                b'{"message":"Internal Server Error"}',
            )
        self._send(status, out_headers, data)
        self._log(route.route_key, status, route.function, started)

    def _log(self, route_key: str, status: int, function: str, started: float) -> None:
        """The request line: the route's template (/customers/{key}), never the path with its
        values. ``http_status`` marks it for the terminal (local/output.py)."""
        log.info(
            "%s -> %s %s (%.0f ms)",
            route_key,
            status,
            function,
            (time.perf_counter() - started) * 1000,
            extra={"http_status": status},
        )

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815
