"""Dynamic providers (boto3 calls Pulumi has no resource for).

Pulumi pickles a provider instance by reference to its module-level class, and the dynamic-provider
host imports it again from the project root; keep these classes module-level and stateless.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import ConfigureRequest, ResourceProvider


class AwsProvider(ResourceProvider):
    """A provider that calls AWS with the stack's `aws:profile`, as its aws resources do.

    The aws provider honours `aws:profile`; boto3 would not see it. Pulumi calls `configure` with the stack's
    configuration when the provider host loads the provider, before any create, update or delete. Without a
    profile, boto3's default chain (environment, AWS_PROFILE, SSO, instance role), as the aws provider. The other
    `aws:` credential settings (`assumeRoles`, `accessKey`) reach only the aws resources (README, "Deploy to AWS
    with Pulumi").
    """

    profile: str | None = None  # set in the provider host only, never pickled with the program's instance

    def configure(self, req: ConfigureRequest) -> None:
        self.profile = req.config.get("aws:profile") or None

    def session(self) -> Any:
        import boto3  # deferred so the program process never builds a client it does not use

        return boto3.session.Session(profile_name=self.profile)  # a missing profile: ProfileNotFound

    def client(self, service: str, region: str | None = None, **kwargs: Any) -> Any:
        return self.session().client(service, region_name=region, **kwargs)
