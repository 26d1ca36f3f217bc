"""CRM and billing destinations: NPS written back where teams work (docs/destinations.md)."""
