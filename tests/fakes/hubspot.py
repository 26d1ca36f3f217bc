"""The HubSpot stand-in (reads for ingest, writes for destinations) lives in
``local.standins.hubspot``; this name stays for the ingest tests."""

from local.standins.hubspot import HubSpotStandin as FakeHubSpot
from local.standins.hubspot import rate_limited as _rate_limited

__all__ = ["FakeHubSpot", "_rate_limited"]
