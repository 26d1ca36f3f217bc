"""CrmWebhookFunction: POST /webhooks/crm/{provider} -> CRM profiles (account, region, owner)."""

from crm_providers import ADAPTERS
from nps_sync.webhooks import handler

lambda_handler = handler("crm", ADAPTERS)
