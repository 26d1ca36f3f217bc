"""CrmWebhookFunction: POST /webhooks/crm/{provider} -> CRM profiles (account, region, owner)."""

from crm_providers import ADAPTERS
from nps_sync.web.receivers import handler

lambda_handler = handler("crm", ADAPTERS)
