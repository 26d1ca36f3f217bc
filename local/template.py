"""Read template.yaml the way CloudFormation would: expand SAM offline, then list what runs.

Functions, HTTP routes and event source mappings come out of the translated template, so a
new function plugs in by being declared in template.yaml; nothing here names one.
"""

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SETTINGS = ROOT / "local" / "settings.json"


@dataclass
class Function:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, Any]
    timeout: int = 3
    memory: int = 128


@dataclass
class Route:
    method: str  # upper case, or ANY
    path: str  # API Gateway form: /webhooks/survey/{provider}
    function: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(self.path))
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
        return re.compile(f"^{regex}$")


@dataclass
class EventSource:
    function: str
    source: Any  # an unresolved ARN expression ({"Fn::GetAtt": [...]})
    batch_size: int
    report_failures: bool
    max_retries: int | None
    bisect: bool
    on_failure: Any = None
    window_seconds: int = 0
    tumbling_seconds: int = 0  # TumblingWindowInSeconds: events name their shard and window
    filters: tuple[str, ...] = ()  # FilterCriteria patterns: a record must match one, if any


@dataclass
class Template:
    resources: dict[str, dict[str, Any]]
    parameters: dict[str, str]
    outputs: dict[str, Any]
    functions: dict[str, Function] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    event_sources: list[EventSource] = field(default_factory=list)
    layer_dirs: list[Path] = field(default_factory=list)

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def function_of(self, target: str) -> str:
        """The function a logical id invokes: itself, or the one an alias points at. Routes and
        event sources name the AutoPublishAlias alias (template.yaml Globals); locally every
        alias runs the one copy of its function's code (SnapStart has nothing to restore)."""
        alias = self.resources.get(target, {})
        if alias.get("Type") == "AWS::Lambda::Alias":
            return alias["Properties"]["FunctionName"]["Ref"]
        return target


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def load(path: Path = TEMPLATE, overrides: dict[str, str] | None = None) -> Template:
    from cfnlint.decode import decode
    from samtranslator.translator.transform import transform

    source, problems = decode(str(path))
    if problems:
        raise ValueError(f"{path}: {problems[0]}")
    sam = copy.deepcopy(dict(source))
    code_dirs: dict[str, Path] = {}
    layer_dirs: list[Path] = []
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            code_dirs[logical_id] = (path.parent / props["CodeUri"]).resolve()
            props["CodeUri"] = f"s3://local-placeholder/{logical_id}"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            layer_dirs.append((path.parent / props["ContentUri"]).resolve())
            props["ContentUri"] = f"s3://local-placeholder/{logical_id}"
    parameters = {
        name: str(spec.get("Default", "")) for name, spec in sam.get("Parameters", {}).items()
    }
    parameters.update(overrides or {})
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    cfn = transform(sam, dict(parameters), _NoManagedPolicies())
    result = Template(
        resources=cfn["Resources"],
        parameters=parameters,
        outputs=cfn.get("Outputs", {}),
        layer_dirs=layer_dirs,
    )
    for logical_id, resource in result.of_type("AWS::Lambda::Function").items():
        props = resource["Properties"]
        result.functions[logical_id] = Function(
            logical_id=logical_id,
            code_dir=code_dirs[logical_id],
            handler=props["Handler"],
            environment=props.get("Environment", {}).get("Variables", {}),
            timeout=int(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
        )
    for api in result.of_type("AWS::ApiGatewayV2::Api").values():
        for path_, methods in api["Properties"].get("Body", {}).get("paths", {}).items():
            for method, spec in methods.items():
                uri = json.dumps(spec.get("x-amazon-apigateway-integration", {}).get("uri"))
                target = re.search(r"functions/\$\{(\w+?)(?:\.Arn)?\}/invocations", uri)
                if target:
                    verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                    result.routes.append(Route(verb, path_, result.function_of(target.group(1))))
    for resource in result.of_type("AWS::Lambda::EventSourceMapping").values():
        props = resource["Properties"]
        function = result.function_of(props["FunctionName"]["Ref"])
        result.event_sources.append(
            EventSource(
                function=function,
                source=props["EventSourceArn"],
                batch_size=int(props.get("BatchSize", 100)),
                report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                max_retries=_int_or_none(props.get("MaximumRetryAttempts")),
                bisect=bool(props.get("BisectBatchOnFunctionError", False)),
                on_failure=props.get("DestinationConfig", {})
                .get("OnFailure", {})
                .get("Destination"),
                window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                tumbling_seconds=int(props.get("TumblingWindowInSeconds", 0) or 0),
                filters=tuple(
                    f["Pattern"] for f in props.get("FilterCriteria", {}).get("Filters", [])
                ),
            )
        )
    # Routes with a fixed path win over ones with parameters, as in API Gateway.
    result.routes.sort(key=lambda r: (r.path.count("{"), -len(r.path)))
    return result


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def local_settings(path: Path = SETTINGS) -> dict[str, Any]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())
