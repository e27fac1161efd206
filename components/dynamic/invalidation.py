"""CloudFront invalidation as a resource: one invalidation when it is created, and another on each update, which
only a changed site content hash (or path list) makes, so a `pulumi up` with an unchanged site leaves the edge caches
alone. A new distribution replaces the resource."""

from __future__ import annotations

import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, UpdateResult

from components.dynamic import AwsProvider
from components.policies import INVALIDATION_PATHS


class InvalidationInputError(ValueError):
    """A required input of the invalidation resource is missing or malformed."""


def invalidation_batch(paths: list[str], caller_reference: str) -> dict[str, Any]:
    if not paths or any(not isinstance(p, str) or not p.startswith("/") for p in paths):
        raise InvalidationInputError(f"paths must be a non-empty list of absolute paths, got {paths!r}")
    return {"Paths": {"Quantity": len(paths), "Items": list(paths)}, "CallerReference": caller_reference}


def diff_invalidation(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    """Pure diff: a different distribution is a new resource; a new hash or path set is an update."""
    replaces = [k for k in ("distribution_id",) if olds.get(k) != news.get(k)]
    updates = [k for k in ("content_hash", "paths") if olds.get(k) != news.get(k)]
    return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)


class InvalidationProvider(AwsProvider):
    def _invalidate(self, props: dict[str, Any]) -> dict[str, Any]:
        for field in ("distribution_id", "content_hash"):
            if not props.get(field):
                raise InvalidationInputError(f"{field} is required, got {props.get(field)!r}")
        paths = list(props.get("paths") or INVALIDATION_PATHS)
        # The hash plus a nonce: CloudFront rejects a reused CallerReference with a different batch.
        reference = f"{props['content_hash'][:32]}-{uuid.uuid4().hex[:12]}"
        # The stack's region picks the partition's CloudFront endpoint (cloudfront.amazonaws.com for every aws region,
        # cloudfront.cn-northwest-1.amazonaws.com.cn for aws-cn); without it boto3 takes the deployer's default region.
        client = self.client("cloudfront", region=props.get("region") or None)
        reply = client.create_invalidation(
            DistributionId=props["distribution_id"], InvalidationBatch=invalidation_batch(paths, reference)
        )
        return {
            "distribution_id": props["distribution_id"],
            "content_hash": props["content_hash"],
            "paths": paths,
            "region": props.get("region"),
            "invalidation_id": reply["Invalidation"]["Id"],
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._invalidate(props)
        return CreateResult(id_=f"{outs['distribution_id']}-{outs['content_hash'][:16]}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_invalidation(olds, news)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._invalidate(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # An invalidation is a one-off event; there is nothing to remove.
        return None


class CloudFrontInvalidation(Resource):
    invalidation_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        distribution_id: pulumi.Input[str],
        content_hash: pulumi.Input[str],
        paths: list[str] | None = None,
        region: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            InvalidationProvider(),
            name,
            {
                "distribution_id": distribution_id,
                "content_hash": content_hash,
                "paths": list(paths or INVALIDATION_PATHS),
                "region": region,
                "invalidation_id": None,
            },
            opts,
        )
