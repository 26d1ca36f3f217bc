"""Every sample body's normalized records, pinned: a faster adapter must say the same thing.

tests/unit/adapter_outputs.json was written from the adapters before they were tuned for
issue 17 (item 4); each record's full dump (with its customer key and category), its
content hash (store.records, the version check) and its raw payload must stay as they were.
Regenerate only for an intended change: ``python -m tests.unit.test_adapter_outputs``.
"""

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from local.signer import signed_sample
from nps_sync.core.models import as_json
from nps_sync.core.settings import Settings
from nps_sync.store.records import content_hash

ROOT = Path(__file__).resolve().parent.parent.parent
PINNED = Path(__file__).with_name("adapter_outputs.json")
KINDS = {"survey": "survey_providers", "crm": "crm_providers", "billing": "billing_providers"}


def _settings() -> Settings:
    parameters = json.loads((ROOT / "local" / "settings.json").read_text())["parameters"]
    return Settings.of(
        {
            "RECORDS_TABLE": "nps-sync-RecordsTable",
            "NPS_SYNC_SECRETS_FILE": str(ROOT / "local" / "dev-secrets.json"),
            "NPS_QUESTIONS": parameters["NpsQuestions"],
            "COMMENT_QUESTIONS": parameters["CommentQuestions"],
            "CRM_FIELDS": parameters.get("CrmFields", "{}"),
        }
    )


def _samples() -> list[tuple[str, str]]:
    return [
        (kind, path.name)
        for kind in KINDS
        for path in sorted((ROOT / "events" / "bodies" / kind).iterdir())
    ]


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def normalized(kind: str, name: str) -> dict:
    """What the adapter makes of a sample body, signed as its provider signs it."""
    path = ROOT / "events" / "bodies" / kind / name
    provider, creds, now, request = signed_sample(kind, path)
    adapter = importlib.import_module(KINDS[kind]).ADAPTERS[provider]
    settings = _settings()
    adapter.verify(request, creds, now, settings)
    batch = adapter.parse(request, settings)
    return {
        "ignored": batch.ignored,
        "refuse_conflicts": batch.refuse_conflicts,
        "records": [
            {
                "type": type(item.record).__name__,
                "record": as_json(item.record),
                "content_hash": content_hash(item.record),
                "raw": _digest(item.raw),
            }
            for item in batch.records
        ],
    }


def test_every_sample_body_is_pinned():
    assert sorted(json.loads(PINNED.read_text())) == sorted(f"{k}/{n}" for k, n in _samples())


@pytest.mark.parametrize(("kind", "name"), _samples())
def test_normalized_output_is_unchanged(kind, name):
    pinned = json.loads(PINNED.read_text())[f"{kind}/{name}"]
    assert normalized(kind, name) == pinned


if __name__ == "__main__":
    PINNED.write_text(
        json.dumps({f"{k}/{n}": normalized(k, n) for k, n in _samples()}, indent=1) + "\n"
    )
