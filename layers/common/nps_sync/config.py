"""Settings: one model, read once from the environment.

In the cloud the values come from template.yaml (parameters -> Globals environment); locally the
runtime fills the same parameters from local/settings.json. A missing variable fails at start
with the variable's name instead of a KeyError deep inside a request.
"""

import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, Json


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, validate_default=True)

    records_table: str = Field(alias="RECORDS_TABLE", min_length=1)
    secret_id: str | None = Field(default=None, alias="SECRET_ID")
    secrets_file: str | None = Field(default=None, alias="NPS_SYNC_SECRETS_FILE")
    # Which question is the NPS question, per provider: Typeform field refs of opinion_scale
    # questions (fields of type "nps" are found without it), Formbricks question ids.
    nps_questions: Json[dict[str, list[str]]] = Field(default="{}", alias="NPS_QUESTIONS")
    # Which open question holds the comment, per provider (Typeform refs, Formbricks ids).
    comment_questions: Json[dict[str, list[str]]] = Field(default="{}", alias="COMMENT_QUESTIONS")
    # Which CRM field holds the region, account, … per provider (nps_sync/crm_fields.py).
    crm_fields: Json[dict[str, dict[str, Any]]] = Field(default="{}", alias="CRM_FIELDS")
    # HubSpot events are thin: the CRM receiver queues reads of the full record here.
    crm_enrichment_queue: str | None = Field(default=None, alias="CRM_ENRICHMENT_QUEUE")
    hubspot_api_url: str = Field(default="https://api.hubapi.com", alias="HUBSPOT_API_URL")
    raw_retention_days: int = Field(default=400, alias="RAW_RETENTION_DAYS", ge=1)
    max_body_bytes: int = Field(default=256 * 1024, alias="MAX_BODY_BYTES", ge=1024)
    signature_tolerance_seconds: int = Field(default=300, alias="SIGNATURE_TOLERANCE_SECONDS", ge=1)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
