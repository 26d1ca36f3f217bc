"""The functions' clients are built from botocore's data cut down (nps_sync.store.aws): in a
fresh process, as at a cold start, each is a client of its cut model, answers as a client of
the full model does, resolves the same endpoint, and never lists botocore's services."""

from pathlib import Path

import boto3
from moto import mock_aws

from nps_sync.core import snapstart
from nps_sync.store import aws
from tests.conftest import fresh_python

ROOT = Path(__file__).parents[2]

FRESH = """
import json, boto3, botocore.loaders
listed = []
original = botocore.loaders.Loader.list_available_services
def counted(self, *a):
    listed.append(a)
    return original(self, *a)
botocore.loaders.Loader.list_available_services = counted
from moto import mock_aws
from nps_sync.store import aws
from nps_sync.core.settings import Settings
from nps_sync.store import secrets
answer = {}
with mock_aws():  # moto sets boto3's default session aside: none yet, as at a cold start
    ddb, ssm, sqs, events = (aws.client(s) for s in ("dynamodb", "ssm", "sqs", "events"))
    streams = aws.client("dynamodbstreams")
    answer["listed"] = listed[:]  # before any client of a full model
    ours = (ddb, ssm, sqs, events, streams)
    answer["services"] = [c.meta.service_model.service_name for c in ours]
    answer["endpoints"] = [c.meta.endpoint_url for c in ours]
    full = boto3.client("dynamodb")  # a client of the real service, in the same session
    full.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    answer["full_operations"] = len(full.meta.service_model.operation_names)
    answer["full_endpoint"] = full.meta.endpoint_url
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    pages = ddb.get_paginator("query").paginate(TableName="t",
        KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})
    answer["items"] = [i["n"]["N"] for page in pages for i in page["Items"]]
    boto3.client("ssm").put_parameter(Name="/s", Value=json.dumps({"api_tokens": ["t9"]}),
        Type="SecureString")
    settings = Settings.of({"RECORDS_TABLE": "t", "SECRETS_PARAMETER": "/s"})
    document = secrets.load(settings)
    answer["tokens"] = [t.token for t in document.api_tokens]
    url = boto3.client("sqs").create_queue(QueueName="q")["QueueUrl"]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x"}])
    answer["sent"] = len(sent["Successful"])
    put = events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
    answer["failed_events"] = put["FailedEntryCount"]
    answer["operations"] = {
        c.meta.service_model.service_name: sorted(c.meta.service_model.operation_names)
        for c in (ddb, ssm)
    }
print(json.dumps(answer))
"""


def test_a_fresh_process_makes_its_clients_from_the_cut_models():
    answer = fresh_python(FRESH, cwd=ROOT, path=[ROOT, ROOT / "layers" / "common"])
    cut = ("dynamodb", "ssm", "sqs", "events", "dynamodbstreams")
    assert answer["services"] == [aws.ALIASES[s] for s in cut]
    assert answer["listed"] == []  # not one listing of botocore's ~410 service directories
    # the endpoint botocore's own data gives (rule sets, not endpoints.json's URL)
    assert answer["endpoints"][0] == answer["full_endpoint"]
    assert answer["endpoints"][1:] == [
        "https://ssm.us-east-1.amazonaws.com",
        "https://sqs.us-east-1.amazonaws.com",
        "https://events.us-east-1.amazonaws.com",
        "https://streams.dynamodb.us-east-1.amazonaws.com",
    ]
    assert answer["items"] == ["1"] and answer["tokens"] == ["t9"]
    assert answer["sent"] == 1 and answer["failed_events"] == 0
    assert answer["operations"]["ssm-nps"] == ["GetParameter"]
    assert {"PutItem", "Query", "UpdateItem"} <= set(answer["operations"]["dynamodb-nps"])
    assert "CreateTable" not in answer["operations"]["dynamodb-nps"]
    assert answer["full_operations"] > 50  # the full model beside it is untouched


def test_a_session_set_up_before_gives_clients_of_the_full_models():
    with mock_aws():
        boto3.setup_default_session()  # some other code's session, without the cut data
        assert aws.client("dynamodb").meta.service_model.service_name == "dynamodb"


def test_a_snapstart_restore_sets_the_session_aside_and_the_next_client_sets_it_up_again():
    with mock_aws():
        first = aws.client("dynamodb")
        session = boto3.DEFAULT_SESSION
        assert first.meta.service_model.service_name == "dynamodb-nps"
        snapstart.restore()
        assert boto3.DEFAULT_SESSION is None  # each instance its own credentials
        again = aws.client("dynamodb")
        assert again.meta.service_model.service_name == "dynamodb-nps"
        assert boto3.DEFAULT_SESSION is not session


def test_the_emulated_stack_serves_the_functions_clients_of_the_cut_models(function_env):
    """local/aws.py sets the session up as a cold start does: every integration test and `make
    run` then exercise the cut models, not the full ones."""
    for service, alias in aws.ALIASES.items():
        assert aws.client(service).meta.service_model.service_name == alias
