"""A fake HubSpot CRM API on 127.0.0.1: batch reads of contacts and companies, and of their
associations (v4), counted.

Answers like HubSpot does: requested properties come back (null when unset), ids it does not
have are listed under ``errors`` with HTTP 207, more than 100 inputs is a 400, a wrong bearer
token a 401. Associations come ``page_size`` per object, with ``paging.next.after`` when there
are more. ``fail_next`` queues error answers (5xx, or any status) for the next calls;
``rate_limit`` queues HubSpot's 429s: the body names the limit hit in ``policyName`` (the
10-second burst limit per app, or the account's daily one), a Retry-After header only when given.
"""

import contextlib
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/crm/v3/objects/{kind}/batch/read"
LIMITS = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "DAILY": "daily"}
ASSOCIATIONS = re.compile(r"^/crm/v4/associations/(\w+)/(\w+)/batch/read$")


class FakeHubSpot:
    def __init__(self, token: str = "dev-hubspot-token"):  # noqa: S107 - a test fake
        self.token = token
        self.objects: dict[str, dict[str, dict]] = {"contacts": {}, "companies": {}}
        self.associations: dict[tuple[str, str, str], list[str]] = {}
        self.page_size = 500
        self.calls: list[tuple[str, list[str]]] = []  # (kind, ids) of each batch read
        self.failures: list[tuple[int, dict[str, str], dict]] = []
        self.delay = 0.0
        self._server: ThreadingHTTPServer | None = None

    def add(self, kind: str, object_id: str, updated_at: str = "2026-03-02T10:20:00Z", **props):
        self.objects[kind][str(object_id)] = {"updatedAt": updated_at, "properties": props}

    def associate(self, kind: str, object_id: str, to_kind: str, to_ids: list[str]) -> None:
        """Associations both ways, as HubSpot keeps them."""
        self.associations[(kind, str(object_id), to_kind)] = [str(i) for i in to_ids]
        for to_id in to_ids:
            back = self.associations.setdefault((to_kind, str(to_id), kind), [])
            if str(object_id) not in back:
                back.append(str(object_id))

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        body = {"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"}
        if status == 429:
            body = _rate_limited("TEN_SECONDLY_ROLLING")
        self.failures.append((status, headers or {}, body))

    def rate_limit(
        self, retry_after: str | None = None, policy: str = "TEN_SECONDLY_ROLLING", times: int = 1
    ) -> None:
        """The next ``times`` calls answer 429 as HubSpot does when ``policy`` is exceeded."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.failures.extend([(429, headers, _rate_limited(policy))] * times)

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, path: str, authorization: str | None, body: bytes) -> tuple[int, dict, dict]:
        if self.delay:
            time.sleep(self.delay)
        kind = next((k for k in self.objects if path == PATH.format(kind=k)), None)
        pair = ASSOCIATIONS.match(path)
        if kind is None and not (pair and {*pair.groups()} <= set(self.objects)):
            return 404, {}, {"status": "error", "category": "OBJECT_NOT_FOUND"}
        if authorization != f"Bearer {self.token}":
            return 401, {}, {"status": "error", "category": "INVALID_AUTHENTICATION"}
        request = json.loads(body)
        ids = [str(item["id"]) for item in request["inputs"]]
        self.calls.append((kind or f"{pair[1]}->{pair[2]}", ids))
        if self.failures:
            return self.failures.pop(0)
        if len(ids) > 100:
            return 400, {}, {"status": "error", "category": "VALIDATION_ERROR"}
        if kind is None:
            return self._associations(pair[1], pair[2], request["inputs"])
        results, missing = [], []
        for object_id in ids:
            stored = self.objects[kind].get(object_id)
            if stored is None:
                missing.append(object_id)
                continue
            properties = {name: stored["properties"].get(name) for name in request["properties"]}
            properties["hs_object_id"] = object_id
            results.append(
                {
                    "id": object_id,
                    "properties": properties,
                    "createdAt": "2026-01-05T08:00:00Z",
                    "updatedAt": stored["updatedAt"],
                    "archived": False,
                }
            )
        answer = {"status": "COMPLETE", "results": results}
        if missing:
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                }
            ]
            answer["numErrors"] = 1
        return (207 if missing else 200), {}, answer

    def _associations(self, kind: str, to_kind: str, inputs: list[dict]) -> tuple[int, dict, dict]:
        results = []
        for item in inputs:
            linked = self.associations.get((kind, str(item["id"]), to_kind), [])
            start = int(item.get("after") or 0)
            page = linked[start : start + self.page_size]
            if not page:
                continue  # HubSpot leaves out objects without associations
            result = {
                "from": {"id": str(item["id"])},
                "to": [
                    {
                        "toObjectId": int(to_id),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 280, "label": None}
                        ],
                    }
                    for to_id in page
                ],
            }
            if start + self.page_size < len(linked):
                result["paging"] = {"next": {"after": str(start + self.page_size), "link": None}}
            results.append(result)
        return 200, {}, {"status": "COMPLETE", "results": results}


def _rate_limited(policy: str) -> dict:
    """HubSpot's 429 body (its usage guidelines; hubspot-api-python issue 117 shows one)."""
    return {
        "status": "error",
        "message": f"You have reached your {LIMITS[policy]} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }


def _handler(fake: FakeHubSpot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, answer = fake.answer(
                self.path, self.headers.get("Authorization"), self.rfile.read(length)
            )
            payload = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            # The client may have given up waiting (the timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def log_message(self, *args):  # keep test output quiet
            pass

    return Handler
