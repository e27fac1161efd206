"""The private, encrypted S3 bucket both the model and the site use (a helper, not a component).

Public access fully blocked, ACLs disabled (BucketOwnerEnforced), server-side encryption by default
(the KMS key when one is given, else SSE-S3), `force_destroy` so `pulumi destroy` removes it with its objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    public_access: aws.s3.BucketPublicAccessBlock  # bucket policies must wait for it
    encryption: aws.s3.BucketServerSideEncryptionConfiguration  # objects must wait for it


def private_bucket(name: str, opts: pulumi.ResourceOptions, kms_key_arn: str | None = None) -> PrivateBucket:
    """Declare `{name}-bucket` and its guards as children of `opts.parent`."""
    bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=True, opts=opts)
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{name}-bucket-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-bucket-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=opts,
    )
    by_default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
        sse_algorithm="aws:kms" if kms_key_arn else "AES256",
        kms_master_key_id=kms_key_arn,
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-bucket-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=by_default,
                bucket_key_enabled=True if kms_key_arn else None,
            )
        ],
        opts=opts,
    )
    return PrivateBucket(bucket, public_access, encryption)
