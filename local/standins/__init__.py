"""Local stand-ins of the destination providers' HTTP APIs, for tests and ``make run``."""
