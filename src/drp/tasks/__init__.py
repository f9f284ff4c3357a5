"""Prefect tasks: each asks ``drp.domain`` to decide and an adapter to act, and records both."""
