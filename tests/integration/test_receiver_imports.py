"""What a webhook function imports on its cold start, in a fresh process: never pydantic (its
import alone was the 1.3x budget, docs/decisions.md) nor powertools' event handler, with
every adapter of the function and the queue senders of its request path loaded."""

from pathlib import Path

import pytest

from tests.conftest import fresh_python

ROOT = Path(__file__).resolve().parents[2]

IMPORTS = """
import importlib, json, sys
import app
adapters = importlib.import_module(sys.argv[1]).ADAPTERS
for name in adapters:
    adapters[name]  # each provider's module, as a request naming it imports it
import nps_sync.ingest.enqueue  # receive.follow_up and the CRM receiver's follows
heavy = ("pydantic", "pydantic_core", "aws_lambda_powertools.event_handler")
print(json.dumps({
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "msgspec")[:1],
    "heavy": sorted(m for m in sys.modules if m.startswith(heavy)),
    "adapters": sorted(m for m in sys.modules if m.startswith(sys.argv[1] + ".")),
}))
"""


@pytest.mark.parametrize("kind", ["survey", "crm", "billing"])
def test_a_webhook_function_never_imports_pydantic(kind):
    function = ROOT / "functions" / f"{kind}_webhook"
    path = [function, ROOT / "layers" / "common"]
    answer = fresh_python(IMPORTS, f"{kind}_providers", cwd=function, path=path)
    assert answer["loaded"] == ["msgspec"]  # it validates, with msgspec
    assert len(answer["adapters"]) >= 3  # the providers' modules were all imported
    assert answer["heavy"] == []
