"""events/: the signed events match their bodies, and env.json only sets what SAM passes on."""

import base64
import json

import pytest

from local.events import ENV_FILE, KINDS, environment, provider_of, stack_outputs, wire_body
from tests.conftest import BODIES, ROOT

BODY_FILES = sorted((kind, path) for kind in KINDS for path in (BODIES / kind).glob("*.*"))


@pytest.mark.parametrize(("kind", "path"), BODY_FILES, ids=[f"{k}/{p.name}" for k, p in BODY_FILES])
def test_each_event_carries_its_body_as_the_provider_sends_it(kind, path):
    event = json.loads((ROOT / "events" / kind / f"{path.stem}.json").read_text())
    body = event["body"].encode()
    if event["isBase64Encoded"]:
        body = base64.b64decode(event["body"])

    assert body == wire_body(path)
    assert event["pathParameters"] == {"provider": provider_of(path)}
    assert event["routeKey"] == f"POST /webhooks/{kind}/{{provider}}"


def test_no_event_is_left_without_its_body():
    events = {(k, p.stem) for k in KINDS for p in (ROOT / "events" / k).glob("*.json")}
    assert events == {(kind, path.stem) for kind, path in BODY_FILES}


def test_env_json_sets_only_variables_the_template_declares(template):
    """`sam local invoke --env-vars` silently drops any variable the function does not
    declare: one that is not declared would never reach the function."""
    env = json.loads(ENV_FILE.read_text())

    assert set(env) == set(KINDS.values())
    for function, variables in env.items():
        declared = template.functions[function].environment
        assert set(variables) <= set(declared), function
        assert {"RECORDS_TABLE", "SECRETS_PARAMETER"} <= set(variables), function
        assert all(isinstance(value, str) for value in variables.values()), function


def test_env_json_is_what_local_events_writes_for_a_stack():
    placeholders = {
        "RecordsTableName": "<RecordsTableName output>",
        "SecretsParameter": "<SecretsParameter output>",
    }
    assert json.loads(ENV_FILE.read_text()) == environment(placeholders)


class CloudFormation:
    def __init__(self, outputs):
        self.outputs = outputs
        self.asked = []

    def describe_stacks(self, StackName):  # noqa: N803 - boto3's name
        self.asked.append(StackName)
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


def test_a_stack_s_outputs_name_its_table_and_secret_for_every_function():
    outputs = {
        "RecordsTableName": "nps-sync-RecordsTable-1X2Y3Z",
        "SecretsParameter": "/nps-sync/secrets",
        "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com",
    }
    cloudformation = CloudFormation(outputs)

    env = environment(stack_outputs("nps-sync-dev", cloudformation))

    assert cloudformation.asked == ["nps-sync-dev"]
    for function in KINDS.values():
        assert env[function]["RECORDS_TABLE"] == outputs["RecordsTableName"]
        assert env[function]["SECRETS_PARAMETER"] == outputs["SecretsParameter"]
    assert env["CrmWebhookFunction"]["CRM_ENRICHMENT_QUEUE"] == ""  # no HubSpot reads queued


def test_a_stack_without_the_outputs_is_refused_by_name():
    with pytest.raises(SystemExit, match="SecretsParameter"):
        stack_outputs("other", CloudFormation({"RecordsTableName": "t"}))
