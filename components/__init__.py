"""Pulumi components and the pure functions they are built from.

Kept import-light on purpose: the local stack imports the pure modules (settings, policies, site_config)
without pulling in the Pulumi engine.
"""
