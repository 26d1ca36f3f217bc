"""The trimmed botocore models the layer ships (local/service_models.py) are the installed
botocore's, cut to the operations we call: regenerated, they are what is shipped."""

import json

from local import service_models


def test_the_shipped_models_are_what_the_installed_botocore_gives():
    expected = service_models.files()
    shipped = {p for p in service_models.TARGET.rglob("*") if p.is_file()}
    assert shipped == set(expected), "run python -m local.service_models"
    for path, content in expected.items():
        assert path.read_bytes() == content, f"{path.name} differs: python -m local.service_models"


def test_a_cut_model_holds_the_operations_our_code_names_and_every_shape_they_need():
    words = service_models.named_in_sources()
    kept = service_models.operations("dynamodb", words)
    assert {"PutItem", "UpdateItem", "Query", "BatchGetItem", "TransactWriteItems"} <= set(kept)
    assert "CreateTable" not in kept and "DescribeTable" not in kept  # named by no code of ours
    assert service_models.operations("ssm", words) == ("GetParameter",)
    _, model, paginators = service_models.trimmed("dynamodb", kept)
    assert tuple(model["operations"]) == kept
    assert set(paginators["pagination"]) == {"Query", "Scan"}  # dynamo.pages follows them
    shapes = model["shapes"]
    assert "documentation" not in json.dumps(model) and "CreateTableInput" not in shapes
    for shape in shapes.values():  # closed: every shape a member names is kept
        for ref in [shape.get("member"), shape.get("value"), *shape.get("members", {}).values()]:
            assert ref is None or ref["shape"] in shapes


def test_the_cut_endpoints_keep_every_partition_with_only_our_services():
    endpoints = json.loads((service_models.TARGET / "endpoints.json").read_bytes())
    partitions = {p["partition"]: set(p["services"]) for p in endpoints["partitions"]}
    assert {"aws", "aws-cn", "aws-us-gov"} <= set(partitions)
    assert partitions["aws"] == {"dynamodb", "streams.dynamodb", "events", "sqs", "ssm"}
    assert all(services <= partitions["aws"] for services in partitions.values())
