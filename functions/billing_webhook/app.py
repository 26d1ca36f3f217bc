"""BillingWebhookFunction: POST /webhooks/billing/{provider} -> billing profiles (plan, MRR)."""

from nps_sync.core.snapstart import cold_start

with cold_start():
    from billing_providers import ADAPTERS
    from nps_sync.web.receivers import handler

    lambda_handler = handler("billing", ADAPTERS)
