"""Dynamic providers (boto3 calls Pulumi has no resource for).

Pulumi pickles a provider instance by reference to its module-level class, and the dynamic-provider
host imports it again from the project root; keep these classes module-level and stateless.
"""
