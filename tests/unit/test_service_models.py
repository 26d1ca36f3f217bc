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


def test_the_trimmed_ssm_model_holds_get_parameter_and_every_shape_it_needs():
    _, model, rules = service_models.trimmed("ssm", ("GetParameter",))
    assert list(model["operations"]) == ["GetParameter"]
    assert model["metadata"]["endpointPrefix"] == "ssm" and rules["rules"]
    shapes = model["shapes"]
    assert {"GetParameterRequest", "GetParameterResult", "Parameter"} <= set(shapes)
    assert "PutParameterRequest" not in shapes
    assert "documentation" not in json.dumps(model)
    for shape in shapes.values():  # closed: every shape a member names is kept
        for ref in [shape.get("member"), *shape.get("members", {}).values()]:
            assert ref is None or ref["shape"] in shapes
