"""SnapStart's restore hook (nps_sync.core.snapstart): registered with the Lambda runtime's
snapshot_restore_py, and when the runtime calls it, every client, setting and secret cached
before the snapshot is made again and ``random`` no longer repeats the snapshot's sequence."""

import functools
import importlib
import json
import random
import sys
import types

import boto3
import pytest

from nps_sync.core import settings as settings_module
from nps_sync.core import snapstart
from nps_sync.store import secrets


@pytest.fixture
def runtime(monkeypatch):
    """What Lambda's Python runtime provides: snapshot_restore_py and its hook list (the
    runtime's, not ours: it calls the hooks after a restore)."""
    hooks: list = []
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_after_restore = lambda func, *a, **k: hooks.append((func, a, k))
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    monkeypatch.setattr(snapstart, "_registered", False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", boto3.DEFAULT_SESSION)  # the hook drops it
    state = random.getstate()  # the hook reseeds it
    yield hooks
    random.setstate(state)


def registered_hook(hooks: list):
    (func, args, kwargs) = hooks[0]
    return lambda: func(*args, **kwargs)


def test_importing_registers_the_hook_once_in_lambda(runtime):
    module = importlib.reload(snapstart)  # an import, as a cold start makes it
    assert [h[0] for h in runtime] == [module.restore]
    assert module.register() is False  # a second import or call registers nothing more
    assert len(runtime) == 1


def test_outside_lambda_nothing_is_registered(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails
    monkeypatch.setattr(snapstart, "_registered", False)
    assert snapstart.register() is False


def test_the_hook_makes_clients_settings_and_secrets_again(runtime, tmp_path, monkeypatch):
    snapstart.register()
    hook = registered_hook(runtime)

    # what a cold start cached before the snapshot
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"providers": {"typeform": {"secret": "before"}}}))
    monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(path))
    monkeypatch.setenv("RECORDS_TABLE", "records")
    settings_module.settings.cache_clear()
    config = settings_module.settings()
    assert secrets.load(config).providers["typeform"]["secret"] == "before"
    boto3.client("dynamodb")
    session = boto3.DEFAULT_SESSION
    assert session is not None

    # rotated while the snapshot waited
    path.write_text(json.dumps({"providers": {"typeform": {"secret": "after"}}}))
    assert secrets.load(config).providers["typeform"]["secret"] == "before"  # cached

    assert hook() >= 3
    assert settings_module.settings.cache_info().currsize == 0
    fresh = settings_module.settings()
    assert fresh is not config
    assert secrets.load(fresh).providers["typeform"]["secret"] == "after"
    assert boto3.DEFAULT_SESSION is None
    boto3.client("dynamodb")
    assert boto3.DEFAULT_SESSION is not session


def test_the_hook_clears_the_handler_modules_cached_clients(runtime, monkeypatch):
    """A function's app.py caches its stores with lru_cache (functions/aggregator/app.py)."""
    app = types.ModuleType("app")
    made: list[object] = []

    @functools.lru_cache(maxsize=1)
    def store():
        made.append(boto3.client("sqs"))
        return made[-1]

    app.store = store
    monkeypatch.setitem(sys.modules, "app", app)
    monkeypatch.setenv("_HANDLER", "app.lambda_handler")
    snapstart.register()
    first = app.store()
    assert app.store() is first

    registered_hook(runtime)()
    assert app.store() is not first
    assert len(made) == 2


def test_a_module_of_another_name_keeps_its_cache(runtime, monkeypatch):
    """Only our modules and the handler's: a library's caches are left as they are."""
    library = types.ModuleType("somelibrary")
    library.cached = functools.lru_cache(maxsize=1)(lambda: object())
    monkeypatch.setitem(sys.modules, "somelibrary", library)
    monkeypatch.setenv("_HANDLER", "app.lambda_handler")
    kept = library.cached()
    snapstart.restore()
    assert library.cached() is kept


def test_random_does_not_repeat_the_snapshots_sequence(runtime):
    snapstart.register()
    random.seed(17)  # the state every instance resumes with
    snapshot = random.getstate()
    expected = [random.random() for _ in range(3)]

    resumed = []
    for _ in range(2):  # two instances resumed from one snapshot
        random.setstate(snapshot)
        registered_hook(runtime)()
        resumed.append([random.random() for _ in range(3)])
    assert expected not in resumed
    assert resumed[0] != resumed[1]


def test_registered_callbacks_run(runtime, monkeypatch):
    stores = {"table": object()}
    monkeypatch.setattr(snapstart, "_callbacks", [])
    snapstart.on_restore(stores.clear)
    snapstart.register()
    registered_hook(runtime)()
    assert stores == {}


REQUEST_PATH = {
    "SurveyWebhookFunction",
    "CrmWebhookFunction",
    "BillingWebhookFunction",
    "ApiFunction",
}


@pytest.mark.parametrize("value", ["None", "PublishedVersions"])
def test_the_template_option_on_and_off(value):
    """SAM expands the option: SnapStart on the request-path functions, every route and event
    source on the ``live`` alias, and the local runtime still finds each one's function."""
    from local.template import load

    template = load(overrides={"SnapStart": value})
    functions = template.of_type("AWS::Lambda::Function")
    snap = {name for name, f in functions.items() if "SnapStart" in f["Properties"]}
    assert snap == REQUEST_PATH
    aliases = template.of_type("AWS::Lambda::Alias")
    assert {a["Properties"]["FunctionName"]["Ref"] for a in aliases.values()} == set(functions)
    assert all(a["Properties"]["Name"] == "live" for a in aliases.values())
    for mapping in template.of_type("AWS::Lambda::EventSourceMapping").values():
        assert mapping["Properties"]["FunctionName"]["Ref"] in aliases
    assert {m.function for m in template.event_sources} <= set(functions)
    assert {"SurveyWebhookFunction", "ApiFunction"} <= {r.function for r in template.routes}
    versions = template.of_type("AWS::Lambda::Version")
    assert all(v.get("DeletionPolicy") == "Delete" for v in versions.values())
