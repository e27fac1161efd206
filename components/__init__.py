"""Pulumi components and the pure functions they are built from.

Kept import-light on purpose: the local stack imports the pure modules (settings, policies, site_config)
without pulling in the Pulumi engine.

Copied into another project, the package needs, beyond `pulumi`, `pulumi_aws` and the standard library:
- `handlers` (handlers/proxy_core.py, which imports `botocore`): policies.py, inference_api.py and
  dynamic/smoke_check.py take the proxy's CORS lists, size limit, timeout and top-k limit from it, so that what is
  deployed and checked and what the proxy enforces cannot differ.
  Every component imports policies, so copy handlers/ beside: InferenceApi bundles all of it into the Lambda, with
  the installed `aws-lambda-powertools` (lambda_bundle.py); the other two need only proxy_core.py and an empty
  __init__.py.
- `boto3` and `botocore`: the dynamic providers (components/dynamic/) call AWS with them at deploy time.
- `packaging`: lambda_bundle.py reads the bundled distributions' requirements.
- `yaml` (PyYAML): settings.read_stack_config only, which the local stack uses.
"""
