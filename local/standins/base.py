"""The harness every provider stand-in shares: a threaded HTTP server on 127.0.0.1, JSON
answers, a sliding-window rate limiter, queued failures and a call log. A provider subclass
only says how it authenticates, routes and phrases its errors, so each stand-in reads like the
provider's docs and not like server plumbing.

Order of checks for every request: the call is logged, then auth (a wrong token never reaches
the rate limiter), then ``observe``, queued failures, the rate limit, and the route.
"""

import argparse
import collections
import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        """The JSON body, or None when it is empty or not JSON (the route answers the 400)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None  # JSON-encoded; None sends an empty body (204)
    headers: dict[str, str] = field(default_factory=dict)


def reply(status: int, body: Any = None, **headers: str) -> Reply:
    return Reply(status, body, {name.replace("_", "-"): value for name, value in headers.items()})


class RateLimiter:
    """At most ``limit`` requests in any ``window`` seconds (a sliding window, as HubSpot's
    TEN_SECONDLY_ROLLING is); ``hit`` answers the seconds until a slot frees, or None."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def hit(self) -> float | None:
        with self._lock:
            now = self.clock()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return max(0.0, self._times[0] + self.window - now)
            self._times.append(now)
            return None


class Standin:
    """Subclass and override ``route`` (and ``authorized``, ``error``, ``rate_limited``)."""

    kind = "standin"

    def __init__(
        self,
        token: str,
        *,
        rate: tuple[int, float] | None = None,  # (requests, window seconds); None: no limit
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.token = token
        self.host = host
        self.port = port
        self.limiter = RateLimiter(*rate) if rate else None
        self.requests: list[tuple[str, str]] = []  # (method, path) of every call, in order
        self.failures: list[Reply] = []
        self.delay = 0.0
        self.url = ""
        self._lock = threading.RLock()  # state changes are atomic per request
        self._server: ThreadingHTTPServer | None = None

    # -- what a provider subclass says ---------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def unauthorized(self, request: Request) -> Reply:
        return reply(401, {"error": "unauthorized"})

    def error(self, status: int) -> Any:
        """The provider's error body for a queued failure of ``status``."""
        return {"error": f"HTTP {status}"}

    def rate_limited(self, retry_after: float) -> Reply:
        """The provider's 429 when the configured rate is exceeded."""
        return reply(429, self.error(429), Retry_After=str(max(1, round(retry_after))))

    def route(self, request: Request) -> Reply:
        return reply(404, self.error(404))

    def observe(self, request: Request) -> None:
        """An authorized call, before queued failures and the rate limit (a provider's own
        call log, e.g. the batch reads a test counts)."""

    # -- tests -----------------------------------------------------------------------------

    def fail_next(self, status: int, headers: dict[str, str] | None = None, body: Any = None):
        """The next call answers ``status`` (with the provider's error body unless given)."""
        answer = self.error(status) if body is None else body
        self.failures.append(Reply(status, answer, headers or {}))

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Calls so far, optionally only those with this method and/or path prefix."""
        return sum(
            1
            for m, p in self.requests
            if (method is None or m == method) and (path is None or p.startswith(path))
        )

    # -- the server ----------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.requests.append((request.method, request.path))
            if not self.authorized(request):
                return self.unauthorized(request)
            self.observe(request)
            if self.failures:
                return self.failures.pop(0)
            wait = self.limiter.hit() if self.limiter else None
            if wait is not None:
                return self.rate_limited(wait)
            return self.route(request)

    def start(self) -> str:
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        host, port = self._server.server_address[:2]
        self.port = port
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _handler(standin: Standin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            split = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                split.path,
                urllib.parse.parse_qs(split.query, keep_blank_values=True),
                {name.lower(): value for name, value in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            answer = standin.handle(request)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            headers = {"Content-Type": "application/json;charset=UTF-8", **answer.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            # The client may have given up waiting (the timeout tests).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def do_GET(self):
            self._serve()

        def do_POST(self):
            self._serve()

        def do_PATCH(self):
            self._serve()

        def do_DELETE(self):
            self._serve()

        def log_message(self, *args):  # keep test output quiet
            pass

    return Handler


def serve(make: Callable[[str, int], Standin], description: str) -> None:
    """``python -m local.standins.<provider> --port N --token T``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    standin = make(args.token, args.port)
    print(f"{standin.kind} stand-in on {standin.start()}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()
