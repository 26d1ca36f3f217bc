"""The emulated (or real) AWS account: an in-process moto server and the template's resources.

Each resource gets the physical name ``<stack>-<LogicalId>`` and is created from its own
template properties (key schema, indexes, stream, TTL, redrive), so local tables and queues
cannot drift from the cloud ones.
"""

import contextlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from nps_sync.store.aws import set_up

from . import moto_speed
from .template import Template

log = logging.getLogger("local.aws")
REGION = "us-east-1"
ACCOUNT = "123456789012"
SECRETS_PARAMETER = "SecretsParameterName"  # template parameter: the secrets SecureString
EMPTY_SECRETS = '{"api_tokens": [], "providers": {}}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """Starts moto in server mode unless AWS_ENDPOINT_URL already names an endpoint."""

    def __init__(self, port: int = 0) -> None:
        if boto3.DEFAULT_SESSION is None:  # clients of the cut models, as in Lambda (store/aws.py)
            set_up()
        self.server = None
        self.port = port  # 0: any free port
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL")

    def start(self) -> str:
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
        if self.endpoint:
            return self.endpoint
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            os.environ[name] = "testing"
        port = self.port or free_port()
        # Its own process: moto's work and the functions' work then run on two cores, not
        # one (a single interpreter lock held both, and moto is half of every request).
        self.server = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "local.aws", "--port", str(port)],
            stdin=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
            process_group=0,  # a terminal's Ctrl-C is the parent's to handle, even mid-import
        )
        _wait_for_port(port, self.server)
        self.endpoint = f"http://127.0.0.1:{port}"
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint
        return self.endpoint

    def stop(self) -> None:
        if self.server is not None:
            self.server.stdin.close()  # the server stops when its stdin closes
            try:
                self.server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None

    def client(self, service: str):
        if service == "dynamodbstreams":  # boto3's account-based endpoint is not routed by moto
            region = os.environ.get("AWS_DEFAULT_REGION", REGION)
            endpoint = self.endpoint or f"https://streams.dynamodb.{region}.amazonaws.com"
            return boto3.client(service, endpoint_url=endpoint)
        return boto3.client(service)


def _serialized_moto_server(port: int):
    """moto in server mode, one request at a time.

    DynamoDB applies each request atomically; moto does not when requests overlap: a failed
    TransactWriteItems restores a copy of the whole table taken before it started, dropping
    writes that other threads made meanwhile. One lock around the app gives back atomicity.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    class KeepAlive(MotoRequestHandler):
        """HTTP/1.1 with connections kept open, as botocore keeps them with AWS.

        werkzeug's development server answers every request with ``Connection: close`` and
        then waits up to 10 ms for stray input, so each call paid for a new connection and
        that wait. A request with a Content-Length (every botocore request but streamed S3
        uploads) is read whole first, answered with a Content-Length, and the connection
        stays open; anything else takes werkzeug's own path.
        """

        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()  # answers go out whole: no wait for the client's delayed ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            length = self.headers.get("Content-Length")
            if length is None or self.headers.get("Transfer-Encoding"):
                return super().run_wsgi()
            if self.headers.get("Expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self.rfile.read(int(length))
            environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            answer: dict[str, Any] = {}
            chunks: list[bytes] = []

            def start_response(status, headers, exc_info=None):
                answer.update(status=status, headers=headers)
                return chunks.append

            try:
                chunks.extend(self.server.app(environ, start_response))
            except Exception:
                log.exception("the emulated AWS endpoint failed")
                answer.update(status="500 Internal Server Error", headers=[])
                chunks.clear()
                self.close_connection = True
            data = b"".join(chunks)
            code, _, reason = answer["status"].partition(" ")
            self.send_response(int(code), reason)
            for name, value in answer["headers"]:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            if self.command != "HEAD":
                self._headers_buffer.append(b"\r\n" + data)  # one write: headers and body
            else:
                self._headers_buffer.append(b"\r\n")
            self.flush_headers()

    return make_server("127.0.0.1", port, serialized, threaded=True, request_handler=KeepAlive)


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulated AWS endpoint exited ({process.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the emulated AWS endpoint did not listen on {port}")


def serve(port: int) -> None:
    """``python -m local.aws --port N``: moto until stdin closes (the parent stopped or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_speed.install()
    server = _serialized_moto_server(port)
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    sys.stdin.buffer.read()
    server.shutdown()
    server.server_close()


class Stack:
    """Creates the template's stateful resources and resolves Ref/GetAtt/Sub against them."""

    def __init__(self, template: Template, emulator: Emulator, name: str = "nps-sync"):
        self.template = template
        self.emulator = emulator
        self.name = name
        self.refs: dict[str, str] = {}
        self.attributes: dict[tuple[str, str], str] = {}

    def physical_name(self, logical_id: str) -> str:
        return f"{self.name}-{logical_id}"

    def provision(self) -> "Stack":
        for logical_id, resource in self.template.of_type("AWS::DynamoDB::Table").items():
            self._table(logical_id, resource["Properties"])
        queues = self.template.of_type("AWS::SQS::Queue")
        for logical_id in _queue_order(queues):
            self._queue(logical_id, queues[logical_id].get("Properties", {}))
        if SECRETS_PARAMETER in self.template.parameters:
            self._secrets_parameter(self.template.parameters[SECRETS_PARAMETER])
        for logical_id, _ in self.template.of_type("AWS::Events::EventBus").items():
            self._bus(logical_id)
        return self

    # --- resources -------------------------------------------------------------------------

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self.physical_name(logical_id)
        ddb = self.emulator.client("dynamodb")
        args = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        try:
            ddb.create_table(**args)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            with contextlib.suppress(ClientError):  # already enabled on a real endpoint
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={
                        "AttributeName": ttl["AttributeName"],
                        "Enabled": True,
                    },
                )
        table = ddb.describe_table(TableName=name)["Table"]
        self.refs[logical_id] = name
        self.attributes[(logical_id, "Arn")] = table["TableArn"]
        if table.get("LatestStreamArn"):
            self.attributes[(logical_id, "StreamArn")] = table["LatestStreamArn"]

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        sqs = self.emulator.client("sqs")
        name = props.get("QueueName") or self.physical_name(logical_id)
        attributes = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "MaximumMessageSize",
        ):
            if key in props:
                attributes[key] = str(self.resolve(props[key]))
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(self.resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        self.refs[logical_id] = url
        self.attributes[(logical_id, "Arn")] = arn["Attributes"]["QueueArn"]
        self.attributes[(logical_id, "QueueName")] = name
        self.attributes[(logical_id, "QueueUrl")] = url

    def _secrets_parameter(self, name: str) -> None:
        """What the operator puts after a deploy (README "Secrets"): the secrets document as
        the SecureString the template names, from NPS_SYNC_SECRETS_FILE (else an empty one)."""
        secret = os.environ.get("NPS_SYNC_SECRETS_FILE")
        value = Path(secret).read_text("utf-8") if secret else EMPTY_SECRETS
        self.emulator.client("ssm").put_parameter(
            Name=name, Value=value, Type="SecureString", Overwrite=True
        )
        self.attributes[(SECRETS_PARAMETER, "Arn")] = (
            f"arn:aws:ssm:{self._ref('AWS::Region')}:{ACCOUNT}:parameter{name}"
        )

    def _bus(self, logical_id: str) -> None:
        events = self.emulator.client("events")
        name = self.physical_name(logical_id)
        try:
            arn = events.create_event_bus(Name=name)["EventBusArn"]
        except ClientError:
            arn = events.describe_event_bus(Name=name)["Arn"]
        self.refs[logical_id] = name
        self.attributes[(logical_id, "Arn")] = arn
        self.attributes[(logical_id, "Name")] = name

    # --- intrinsic functions ---------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return self._ref(arg)
        if fn == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.attributes.get((logical_id, attribute), f"{logical_id}.{attribute}")
        if fn == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return _sub(
                text,
                lambda name: (
                    str(extra[name])
                    if name in extra
                    else str(
                        self.resolve({"Fn::GetAtt": name.split(".", 1)})
                        if "." in name
                        else self._ref(name)
                    )
                ),
            )
        if fn == "Fn::Join":
            return arg[0].join(str(self.resolve(v)) for v in arg[1])
        if fn == "Fn::If":
            return self.resolve(arg[2])  # local mode defines no conditions as true
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": os.environ.get("AWS_DEFAULT_REGION", REGION),
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": self.name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.parameters:
            return self.template.parameters[name]
        return self.refs.get(name, self.physical_name(name))


def _sub(text: str, lookup) -> str:
    return re.sub(r"\$\{([\w:.]+)\}", lambda m: lookup(m.group(1)), text)


def _queue_order(queues: dict[str, dict[str, Any]]) -> list[str]:
    """Dead-letter queues first: a queue's redrive policy names their ARN."""

    def depends(props: dict[str, Any]) -> set[str]:
        text = json.dumps(props.get("RedrivePolicy", {}))
        return {q for q in queues if f'"{q}"' in text}

    ordered: list[str] = []
    pending = dict(queues)
    while pending:
        ready = [q for q, r in pending.items() if depends(r.get("Properties", {})) <= set(ordered)]
        ordered.extend(sorted(ready) or sorted(pending))
        for q in ready or list(pending):
            pending.pop(q)
    return ordered


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m local.aws")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
