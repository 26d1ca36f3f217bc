"""The functions' boto3 clients, built from botocore's data cut down to what we call.

A process's first boto3 client reads botocore's data: the 1.2 MB endpoints.json (~30 ms of a
cold start here), a listing of botocore's ~410 service directories for each kind of model
(~20 ms) and the service's whole model (DynamoDB's ~10 ms, SSM's ~250 ms). The layer ships
that data cut down (MODELS, written from the installed botocore by ``python -m
local.service_models``): endpoints.json with only the services we call, and each service's
model cut to the operations our code names, under a name of its own (ALIASES) so that a client
of the real service, wherever a process makes one, is not affected; the rest (endpoint rule
sets, defaults) stays the running botocore's own. A client from here is of the cut model when
the process's default session is one this module set up, else (a session some other code set
up first) of the full one. Measured: docs/decisions.md "Clients from botocore's data cut down".
"""

import os
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.exceptions import UnknownServiceError

MODELS = Path(__file__).with_name("aws_models")
# the services we call -> the name of their cut model
ALIASES = {
    "dynamodb": "dynamodb-nps",
    "dynamodbstreams": "dynamodbstreams-nps",
    "events": "events-nps",
    "sqs": "sqs-nps",
    "ssm": "ssm-nps",
}
SERVICES = {alias: service for service, alias in ALIASES.items()}
CUT = ("service-2", "paginators-1")  # what MODELS holds of each; endpoints.json beside them


class _Loader(botocore.loaders.Loader):
    """botocore's loader with MODELS ahead of botocore's data. A cut model is read from its own
    directory without listing every service botocore has, and the data here counts as
    botocore's own (it is, cut down): endpoint resolution stays botocore's default (endpoint
    rule sets, account-based DynamoDB endpoints) rather than taking endpoints.json's URL."""

    def load_service_model(self, service_name, type_name, api_version=None):
        service = SERVICES.get(service_name)
        if service is None:
            return super().load_service_model(service_name, type_name, api_version)
        version = api_version or max(os.listdir(MODELS / service_name))
        if type_name in CUT:
            return self.load_data(f"{service_name}/{version}/{type_name}")
        # the rest (endpoint rules above all) is the running botocore's own: its endpoint
        # provider reads its own rules (a newer botocore's may use what an older cannot)
        return self.load_data(f"{service}/{version}/{type_name}")

    def is_builtin_path(self, path):
        return Path(path).is_relative_to(MODELS) or super().is_builtin_path(path)


def set_up() -> None:
    """Make the process's default boto3 session read MODELS before botocore's data (after any
    AWS_DATA_PATH, which stays its user's to override with)."""
    core = botocore.session.get_session()
    paths = [p for p in (os.environ.get("AWS_DATA_PATH") or "").split(os.pathsep) if p]
    core.register_component("data_loader", _Loader(extra_search_paths=[*paths, str(MODELS)]))
    boto3.setup_default_session(botocore_session=core)


def client(service: str) -> Any:
    """A client of ``service`` (its cut model where the default session is ours). A default
    session not set up yet (a cold start; after a SnapStart restore, which sets it aside) is
    set up here."""
    if boto3.DEFAULT_SESSION is None:
        set_up()
    try:
        return boto3.client(ALIASES.get(service, service))
    except UnknownServiceError:
        return boto3.client(service)


def service_of(service_model: Any) -> str:
    """The service a client's model is of, cut or not (for hooks that tell calls apart)."""
    return SERVICES.get(service_model.service_name, service_model.service_name)
