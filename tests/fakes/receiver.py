"""A webhook subscriber on 127.0.0.1: records what it is sent, answers as it is told."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    fail_times: int = 0  # answer 503 this many times first
    always_fail: bool = False
    # > 0: the answer (204) trickles out a byte at a time over this many seconds, each byte
    # well inside any per-read timeout
    trickle_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    server: ThreadingHTTPServer | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/nps"

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.received]

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.attempts += 1
                if receiver.always_fail or receiver.fail_times > 0:
                    receiver.fail_times -= 1
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if receiver.trickle_seconds > 0:
                    self.trickle(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body))
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def trickle(self, answer: bytes) -> None:
                pause = receiver.trickle_seconds / len(answer)
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    return  # the sender gave up
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
