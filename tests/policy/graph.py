"""The whole Pulumi program under mocks, as a flat list of resources the policy rules can walk.

Reuses the infra tests' mocks (tests/infra/conftest.py) and only adds what a graph-wide rule needs:
each resource's id and outputs (so a BucketPolicy's `bucket` input can be joined to its Bucket, a
Function's `role` to its Role) and a URN to name the offender in a failure message.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.infra.conftest import (
    ENGINE_LOOP,
    ROOT,
    RecordingMocks,
    lambda_bundle_stub,
    make_artifact,
    run_main,
)

PROJECT = "mobilenet-serverless"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-1111-2222-333344445555"
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CUSTOM_DOMAIN = "classify.example.com"
EXTRA_ORIGIN = "https://admin.example.com"
ALARM_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ops-alerts"

# A production-shaped stack: every optional security knob turned on, numbers away from the defaults so
# a rule that compares against the configured value cannot pass by matching a hard-coded default.
PROD_CONFIG: dict[str, Any] = {
    "memorySizeMb": 4096,
    "maxConcurrency": 10,
    "provisionedConcurrency": 2,
    "lambdaArchitecture": "x86_64",
    "apiThrottleRateLimit": 100,
    "apiThrottleBurstLimit": 200,
    "corsExtraOrigins": [EXTRA_ORIGIN],
    "logRetentionDays": 90,
    "priceClass": "PriceClass_All",
    "customDomain": CUSTOM_DOMAIN,
    "certificateArn": CERT_ARN,
    "kmsKeyArn": KMS_KEY_ARN,
    "smokeCheck": False,
    "endpointName": "mobilenet-prod",
    "alarmTopicArn": ALARM_TOPIC_ARN,
}


@dataclass(frozen=True)
class Res:
    """One registered resource: type token, logical name, inputs (engine camelCase), id and outputs."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    id: str = ""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    urn: str = ""

    def label(self) -> str:
        return self.urn or f"{self.type}::{self.name}"


@dataclass(frozen=True)
class Graph:
    stack: str
    config: Mapping[str, Any]  # un-prefixed keys, as handed to the program
    resources: tuple[Res, ...]
    exports: Mapping[str, Any]

    def of_type(self, typ: str) -> list[Res]:
        return [r for r in self.resources if r.type == typ]


def of_type(resources: Iterable[Res], typ: str) -> Iterator[Res]:
    return (r for r in resources if r.type == typ)


class GraphMocks(RecordingMocks):
    """RecordingMocks that also keeps what each resource resolved to (id, outputs)."""

    def __init__(self, stack: str) -> None:
        super().__init__()
        self.stack = stack
        self.resolved: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, outs = super().new_resource(args)
        self.resolved[(args.typ, args.name)] = (rid, dict(outs))
        return rid, outs

    def graph(self, config: Mapping[str, Any], exports: Mapping[str, Any]) -> Graph:
        resources = []
        for (typ, name), inputs in self.resources.items():
            rid, outs = self.resolved.get((typ, name), ("", {}))
            urn = f"urn:pulumi:{self.stack}::{PROJECT}::{typ}::{name}"
            resources.append(Res(typ, name, inputs, rid, outs, urn))
        return Graph(self.stack, dict(config), tuple(resources), dict(exports))


def run_program(stack: str, config: Mapping[str, Any], workdir: Path) -> Graph:
    """Run __main__.py once under fresh mocks and return every resource it registered.

    The Lambda bundle is stubbed as in tests/infra (handler sources only): what Powertools files ship
    is not a security property, and walking site-packages would dominate the run time.
    """
    # As tests/infra's mocks fixture does: a test before this one in the session (asyncio.run, in the local stack's)
    # may have left the thread without the loop the root stack resource was made on.
    asyncio.set_event_loop(ENGINE_LOOP)
    mocks = GraphMocks(stack)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    artifact, _ = make_artifact(workdir / "model")
    full = {"modelArtifact": str(artifact), **config}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "components.lambda_bundle", lambda_bundle_stub())
        try:
            exports = run_main(mocks, full)
        finally:
            pulumi.runtime.set_all_config({})
    return mocks.graph(full, exports)


def dev_config() -> dict[str, Any]:
    import yaml

    from components.settings import strip_namespace

    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    return strip_namespace(document["config"])
