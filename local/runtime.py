"""Wire it together: emulator + resources + functions + HTTP gateway + pollers."""

import dataclasses
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from . import faults, seed, standins
from . import template as template_module
from .aws import Emulator, Stack
from .gateway import Gateway
from .lambdas import LocalFunction, add_layers
from .pollers import Poller, poller_for

log = logging.getLogger("local.runtime")
ROOT = template_module.ROOT
DEV_SECRETS = ROOT / "local" / "dev-secrets.json"

# Lambda's own environment, and powertools settings that suit a laptop.
LOCAL_ENVIRONMENT = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "NPS_SYNC_LOCAL": "1",
}


class Runtime:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3000,
        template_path: Path = template_module.TEMPLATE,
        settings_path: Path = template_module.SETTINGS,
        aws_port: int = 0,
    ):
        self.host = host
        self.port = port
        self.template_path = template_path
        self.settings_path = settings_path
        self.stop_event = threading.Event()
        self.emulator = Emulator(aws_port)
        self.pollers: list[Poller] = []
        self.gateway: Gateway | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.faults: faults.Faults | None = None
        self.standins: dict[str, Any] = {}

    def start(self) -> "Runtime":
        os.environ.setdefault("NPS_SYNC_SECRETS_FILE", str(DEV_SECRETS))
        for name, value in LOCAL_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        settings = template_module.local_settings(self.settings_path)
        template = template_module.load(self.template_path, settings.get("parameters", {}))
        self.emulator.start()
        stack = Stack(template, self.emulator).provision()
        self._set_environment(template, stack)
        if os.environ.get("STANDINS", "1") != "0":  # STANDINS=0: the URLs as configured
            self._start_standins()
        self.faults = faults.from_environment()  # LOCAL_FAULTS=rate (make load-faults) only
        add_layers(template)
        self.functions = {
            logical_id: LocalFunction(spec) for logical_id, spec in template.functions.items()
        }
        for function in self.functions.values():
            function.handler()  # import now: a broken handler fails at start, not on a request
        for mapping in template.event_sources:
            arn = stack.resolve(mapping.source)
            mapping = dataclasses.replace(mapping, on_failure=stack.resolve(mapping.on_failure))
            poller = poller_for(
                self.functions[mapping.function], mapping, arn, self.emulator, self.stop_event
            )
            poller.start()
            self.pollers.append(poller)
        self.gateway = Gateway((self.host, self.port), template.routes, self.functions)
        self.port = self.gateway.server_address[1]
        threading.Thread(target=self.gateway.serve_forever, name="gateway", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.stop_event.set()
        if self.gateway is not None:
            self.gateway.shutdown()
            self.gateway.server_close()
        deadline = time.monotonic() + 5  # for all of them: each is told at once by stop_event
        for poller in self.pollers:
            poller.join(timeout=max(0.0, deadline - time.monotonic()))
        self.emulator.stop()
        standins.stop_all(self.standins)

    def _start_standins(self) -> None:
        """The providers' APIs we call, on loopback (allowed by ALLOW_LOCAL_SUBSCRIBERS in
        local/settings.json), holding the demo data's customers; their URLs become the
        settings, as a sandbox's would."""
        count = int(os.environ.get("SEED_CUSTOMERS", "2000"))
        secrets = json.loads(Path(os.environ["NPS_SYNC_SECRETS_FILE"]).read_text())
        self.standins = standins.start_all(secrets["destinations"], seed.customers(count))
        for kind, standin in self.standins.items():
            for name in standins.URL_SETTINGS[kind]:
                os.environ[name] = standin.url

    def _set_environment(self, template, stack: Stack) -> None:
        """All functions share one process, so their variables must agree; say so if not."""
        seen: dict[str, Any] = {}
        for function in template.functions.values():
            for name, value in function.environment.items():
                resolved = stack.resolve(value)
                if resolved is None:
                    continue
                if name in seen and seen[name] != resolved:
                    log.warning("%s differs between functions; using %r", name, seen[name])
                    continue
                seen[name] = resolved
                if name not in LOCAL_ENVIRONMENT or name not in os.environ:
                    os.environ[name] = str(resolved)
