"""Load a template function's handler from its CodeUri and invoke it as Lambda would.

One lock per function: like a single warm container, it runs one invocation at a time, and
module state (powertools' logger keys, metrics) is never shared between two invocations.
"""

import importlib.util
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .template import Function, Template


@dataclass
class Context:
    """The parts of the Lambda context object that handlers and powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout: int
    aws_request_id: str
    invoked_function_arn: str
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    def __init__(self, spec: Function):
        self.spec = spec
        self.lock = threading.Lock()
        self._handler = None

    @property
    def name(self) -> str:
        return self.spec.logical_id

    def handler(self):
        if self._handler is None:
            self._handler = load_handler(self.spec)
        return self._handler

    def invoke(self, event: dict[str, Any]) -> Any:
        context = Context(
            function_name=self.name,
            memory_limit_in_mb=self.spec.memory,
            timeout=self.spec.timeout,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.name}",
        )
        with self.lock:
            return self.handler()(event, context)


def load_handler(spec: Function):
    """Import ``<CodeUri>/<module>.py`` under a name of its own, as a separate Lambda would."""
    module_name, _, attribute = spec.handler.rpartition(".")
    path = Path(spec.code_dir) / (module_name.replace(".", "/") + ".py")
    code_dir = str(spec.code_dir)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    unique = f"lambda_{spec.logical_id}_{module_name.replace('.', '_')}"
    module = sys.modules.get(unique)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(unique, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[unique] = module
        loader_spec.loader.exec_module(module)
    return getattr(module, attribute)


def add_layers(template: Template) -> None:
    for layer in template.layer_dirs:
        if str(layer) not in sys.path:
            sys.path.insert(0, str(layer))
