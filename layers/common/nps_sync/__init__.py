"""Shared code of nps-sync: canonical records, signing, storage, settings."""
