"""Trimmed botocore service models, shipped in the layer (nps_sync/store/aws_models/).

A boto3 client parses its service's whole model when it is created: SSM's is ~1.5 MB of JSON,
~150-300 ms of a cold start, for the one operation we call (GetParameter, the secrets
document). Botocore finds a model on its data path (its ``data_path`` setting), so the layer
carries a model of that operation alone, under a service name of its own (``ALIASES``): a
client of that name is built from it, and any client of the real service is not affected.

The trimmed model is the installed botocore's, cut down to the operations and the shapes they
reference (documentation left out), and its endpoint rules unchanged. Regenerate after a
botocore upgrade: ``python -m local.service_models``; tests/unit/test_service_models.py
fails while the shipped files differ from what this writes.
"""

import json
from pathlib import Path
from typing import Any

import botocore.loaders

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "layers" / "common" / "nps_sync" / "store" / "aws_models"
# alias -> (the real service, the operations it keeps)
ALIASES = {"ssm-getparameter": ("ssm", ("GetParameter",))}


def _without_documentation(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_documentation(v) for k, v in value.items() if k != "documentation"}
    if isinstance(value, list):
        return [_without_documentation(v) for v in value]
    return value


def trimmed(service: str, operations: tuple[str, ...]) -> tuple[str, dict, dict]:
    """(api version, the service model cut to ``operations``, its endpoint rule set)."""
    loader = botocore.loaders.Loader()
    version = loader.determine_latest_version(service, "service-2")
    model = loader.load_service_model(service, "service-2", version)
    rules = loader.load_service_model(service, "endpoint-rule-set-1", version)
    shapes, kept, todo = model["shapes"], set(), []
    for name in operations:
        spec = model["operations"][name]
        todo += [spec[part]["shape"] for part in ("input", "output") if part in spec]
        todo += [error["shape"] for error in spec.get("errors", [])]
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept.add(name)
        shape = shapes[name]
        refs = [shape.get("member"), shape.get("key"), shape.get("value")]
        todo += [ref["shape"] for ref in [*refs, *shape.get("members", {}).values()] if ref]
    cut = {
        "version": model.get("version"),
        "metadata": model["metadata"],
        "operations": {name: model["operations"][name] for name in operations},
        "shapes": {name: shapes[name] for name in sorted(kept)},
    }
    return version, _without_documentation(cut), rules


def files() -> dict[Path, bytes]:
    """Every file of TARGET, as this botocore makes them."""
    result = {}
    for alias, (service, operations) in ALIASES.items():
        version, model, rules = trimmed(service, operations)
        folder = TARGET / alias / version
        result[folder / "service-2.json"] = _json(model)
        result[folder / "endpoint-rule-set-1.json"] = _json(rules)  # plain: any botocore reads it
    return result


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


if __name__ == "__main__":
    for path, content in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"{path.relative_to(ROOT)}: {len(content):,} bytes")
