"""CrmWebhookFunction: POST /webhooks/crm/{provider} -> CRM profiles (account, region, owner)."""

from nps_sync.core.snapstart import cold_start

with cold_start():
    from crm_providers import ADAPTERS
    from nps_sync.web.receivers import handler

    lambda_handler = handler("crm", ADAPTERS)
