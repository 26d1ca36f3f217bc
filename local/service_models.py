"""botocore's data cut down to what we call, shipped in the layer (nps_sync/store/aws_models/).

A process's first boto3 client reads endpoints.json (1.2 MB), lists botocore's ~410 service
directories and parses its service's whole model; nps_sync.store.aws builds the functions'
clients from this cut instead (measured there). What is written, all from the installed
botocore:

- each service we call (``aws.ALIASES``), under its alias: its model cut to the operations
  whose Python names our code mentions (``operations``: a scan of the layer's and functions'
  sources, so a new call needs a regeneration, not an edit here) and the shapes they reference,
  documentation left out, and the paginators of those operations;
- endpoints.json with only those services in each partition.

Not the endpoint rule sets: those stay the running botocore's (a newer botocore's DynamoDB rules
use a parameter type botocore 1.34 refuses), like its other data files.

Regenerate after a botocore upgrade or a new call: ``python -m local.service_models``;
tests/unit/test_service_models.py fails while the shipped files differ from what this writes.
"""

import json
import re
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.loaders
from botocore import xform_name

from nps_sync.store.aws import ALIASES, MODELS

ROOT = Path(__file__).resolve().parent.parent
TARGET = MODELS
SOURCES = [ROOT / "layers" / "common" / "nps_sync", ROOT / "functions"]


def _without_documentation(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_documentation(v) for k, v in value.items() if k != "documentation"}
    if isinstance(value, list):
        return [_without_documentation(v) for v in value]
    return value


def named_in_sources() -> set[str]:
    """Every identifier of our sources (method names, strings such as ``"update_item"``)."""
    words: set[str] = set()
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            words.update(re.findall(r"[a-z][a-z0-9_]*", path.read_text(encoding="utf-8")))
    return words


def operations(service: str, words: set[str] | None = None) -> tuple[str, ...]:
    """The operations of ``service`` our code may call: those whose Python name it mentions."""
    words = named_in_sources() if words is None else words
    model = botocore.loaders.Loader().load_service_model(service, "service-2")
    return tuple(sorted(name for name in model["operations"] if xform_name(name) in words))


def trimmed(service: str, kept: tuple[str, ...]) -> tuple[str, dict, dict]:
    """(api version, the model cut to ``kept``, those operations' paginators)."""
    loader = botocore.loaders.Loader()
    version = loader.determine_latest_version(service, "service-2")
    model = loader.load_service_model(service, "service-2", version)
    try:
        pages = loader.load_service_model(service, "paginators-1", version)["pagination"]
    except botocore.exceptions.DataNotFoundError:
        pages = {}
    shapes, seen, todo = model["shapes"], set(), []
    for name in kept:
        spec = model["operations"][name]
        todo += [spec[part]["shape"] for part in ("input", "output") if part in spec]
        todo += [error["shape"] for error in spec.get("errors", [])]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        refs = [shape.get("member"), shape.get("key"), shape.get("value")]
        todo += [ref["shape"] for ref in [*refs, *shape.get("members", {}).values()] if ref]
    cut = {
        "version": model.get("version"),
        "metadata": model["metadata"],
        "operations": {name: model["operations"][name] for name in kept},
        "shapes": {name: shapes[name] for name in sorted(seen)},
    }
    paginators = {"pagination": {k: v for k, v in pages.items() if k in kept}}
    return version, _without_documentation(cut), paginators


def files() -> dict[Path, bytes]:
    """Every file of TARGET, as this botocore and our sources make them."""
    loader = botocore.loaders.Loader()
    words = named_in_sources()
    result, prefixes = {}, set()
    for service, alias in ALIASES.items():
        version, model, paginators = trimmed(service, operations(service, words))
        prefixes.add(model["metadata"]["endpointPrefix"])
        folder = TARGET / alias / version
        result[folder / "service-2.json"] = _json(model)
        if paginators["pagination"]:
            result[folder / "paginators-1.json"] = _json(paginators)
    endpoints = loader.load_data("endpoints")
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: spec for name, spec in partition["services"].items() if name in prefixes
        }
    result[TARGET / "endpoints.json"] = _json(endpoints)
    return result


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


if __name__ == "__main__":
    import shutil

    shutil.rmtree(TARGET, ignore_errors=True)
    for path, content in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"{path.relative_to(ROOT)}: {len(content):,} bytes")
