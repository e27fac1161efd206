"""Pulumi mocks for the infra tests.

set_mocks runs at import time, before any test module imports the components, and again per test
(fresh registry). Resources are recorded as (type, name) -> inputs, camelCase as the engine sees them.
"""

from __future__ import annotations

import asyncio
import hashlib
import runpy
import sys
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import pytest

from tests.conftest import names_of

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ACCOUNT = "123456789012"
REGION = "us-east-1"
DLC_ACCOUNT = "763104351884"
API_ID = "abc123defg"
API_ENDPOINT = f"https://{API_ID}.execute-api.{REGION}.amazonaws.com"
EXECUTION_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}"
CF_DOMAIN = "d111111abcdef8.cloudfront.net"
DYNAMIC = "pulumi-python:dynamic:Resource"


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[(args.typ, args.name)] = dict(args.inputs)
        outs = dict(args.inputs)
        name = args.inputs.get("name") or f"{args.name}-a1b2c3"
        rid = f"{args.name}-id"
        typ = args.typ
        if typ == "aws:s3/bucket:Bucket":
            bucket = f"{args.name}-a1b2c3"
            outs.update(
                bucket=bucket,
                arn=f"arn:aws:s3:::{bucket}",
                bucketRegionalDomainName=f"{bucket}.s3.{REGION}.amazonaws.com",
            )
            rid = bucket
        elif typ == "aws:iam/role:Role":
            outs.update(arn=f"arn:aws:iam::{ACCOUNT}:role/{name}", name=name)
            rid = name
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            outs.update(arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}", name=name)
        elif typ in ("aws:sagemaker/model:Model", "aws:sagemaker/endpointConfiguration:EndpointConfiguration"):
            outs.update(name=name)
        elif typ == "aws:sagemaker/endpoint:Endpoint":
            outs.update(arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name.lower()}", name=name)
        elif typ == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            outs.update(
                arn=arn,
                name=name,
                invokeArn=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations",
            )
        elif typ == "aws:apigatewayv2/api:Api":
            outs.update(apiEndpoint=API_ENDPOINT, executionArn=EXECUTION_ARN)
            rid = API_ID
        elif typ == "aws:cloudfront/distribution:Distribution":
            rid = "E2EXAMPLE"
            outs.update(domainName=CF_DOMAIN, arn=f"arn:aws:cloudfront::{ACCOUNT}:distribution/{rid}")
        elif typ == DYNAMIC:
            outs.pop("__provider", None)
        return rid, outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": REGION, "region": REGION, "id": REGION}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
                "userId": "AIDTEST",
                "id": ACCOUNT,
            }, []
        if args.token == "aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage":
            repo, tag = args.args["repositoryName"], args.args.get("imageTag", "latest")
            return {
                "registryId": DLC_ACCOUNT,
                "registryPath": f"{DLC_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}:{tag}",
                "repositoryName": repo,
                "imageTag": tag,
                "id": DLC_ACCOUNT,
            }, []
        raise AssertionError(f"unexpected invoke {args.token}")

    # ---- lookups used by the tests
    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        return {name: inputs for (t, name), inputs in self.resources.items() if t == typ}

    def one(self, typ: str, name: str | None = None) -> dict[str, Any]:
        found = self.of_type(typ)
        if name is not None:
            return found[name]
        assert len(found) == 1, f"expected one {typ}, got {sorted(found)}"
        return next(iter(found.values()))


def _install(project: str = "mobilenet-serverless", stack: str = "dev") -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    return mocks


_install()
ENGINE_LOOP = asyncio.get_event_loop()  # the one set_mocks made (or found) for the root stack resource

# pulumi_aws loads its submodules lazily, each import emitting DeprecationWarnings for resources we do
# not use; load the ones the components use once, quietly, so test output shows only our warnings.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_aws

    for _module, _cls in (
        ("s3", "Bucket"),
        ("lambda_", "Function"),
        ("cloudfront", "Distribution"),
        ("sagemaker", "Model"),
        ("apigatewayv2", "Api"),
        ("iam", "Role"),
        ("cloudwatch", "LogGroup"),
    ):
        getattr(getattr(pulumi_aws, _module), _cls)


@pytest.fixture(autouse=True)
def engine_loop() -> None:
    """Every test here starts on the engine's loop, also those installing mocks of their own (set_mocks): run after a
    test that ended in asyncio.run, with no settle between, they failed "await wasn't used with future" (see mocks)."""
    asyncio.set_event_loop(ENGINE_LOOP)


@pytest.fixture
def mocks() -> RecordingMocks:
    # The root stack resource is made once, above, on this loop, and every component awaits its futures. A test run
    # before in the same session may have left the thread without that loop (asyncio.run, as the local stack's tests
    # use, ends by setting none): Pulumi would then make a new one, and fail on futures attached to a different loop.
    asyncio.set_event_loop(ENGINE_LOOP)
    pulumi.runtime.set_all_config({})
    return _install()


def settle(declare: Callable[[], Any]) -> Any:
    """Run `declare` in the Pulumi mock engine, wait for every registration, return its resolved value.

    The returned Output is awaited (so it is never vacuous) and its value handed back; the caller then
    asserts on both the value and the recorded resource inputs, which are complete by then.
    """
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def _run() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(declare()).apply(lambda value: box.setdefault("value", value))

    _run()
    assert "value" in box, "the declared Output never resolved"
    return box["value"]


def make_artifact(directory: Path) -> tuple[Path, str]:
    """A tiny real model.tar.gz stand-in and its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    code = directory / "inference.py"
    code.write_text("def model_fn(model_dir):\n    return None\n")
    artifact = directory / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(code, arcname="code/inference.py")
    return artifact, hashlib.sha256(artifact.read_bytes()).hexdigest()


def make_www(directory: Path, files: dict[str, bytes] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    content = files or {
        "index.html": b"<!doctype html><title>t</title>",
        "script.js": b"console.log(1);",
        "style.css": b"body{}",
        "samples/cat.jpg": b"\xff\xd8\xff\xe0fakejpeg",
    }
    for rel, data in content.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


# What __main__.py's own imports of these modules get instead of them (a test puts a copy holding its fake here, with
# monkeypatch.setitem and names_of): the module itself patched (pathlib.Path.open, pulumi.export) would be every
# thread's. Its pulumi is always run_main's copy, which records the exports and the deferred outputs.
PROGRAM_IMPORTS: dict[str, Any] = {}


def program_globals(imports: dict[str, Any]) -> dict[str, Any]:
    """Globals to run __main__.py in, its `import X` and `from X import y` of a module named in `imports` answered by
    that copy (a dotted `import X.y` still binds the real X: __main__.py has none)."""
    import builtins

    real_import = builtins.__import__

    def importing(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and name in imports:
            return imports[name]
        return real_import(name, globals, locals, fromlist, level)

    return {"__builtins__": {**vars(builtins), "__import__": importing}}


def run_main(
    mocks: RecordingMocks,
    config: dict[str, Any],
    transformation: Callable[[pulumi.ResourceTransformationArgs], None] | None = None,
) -> dict[str, Any]:
    """Run __main__.py under the mocks with `config` (un-prefixed keys), return the resolved exports.

    transformation: sees every resource's options (parent, depends_on, ignore_changes), which mocks never get.
    """
    import json

    flat = {
        f"mobilenet-serverless:{k}": (json.dumps(v) if isinstance(v, list | bool) else str(v))
        for k, v in config.items()
    }
    flat["aws:region"] = REGION
    pulumi.runtime.set_all_config(flat)
    exports: dict[str, Any] = {}
    unresolved, deferred_output = tracked_deferred_outputs()
    own_pulumi = names_of(pulumi, export=exports.__setitem__, deferred_output=deferred_output)
    program = program_globals({**PROGRAM_IMPORTS, "pulumi": own_pulumi})

    def declare() -> pulumi.Output[dict[str, Any]]:
        if transformation is not None:
            pulumi.runtime.register_stack_transformation(transformation)
        try:
            runpy.run_path(str(ROOT / "__main__.py"), init_globals=program, run_name="__main__")
        except BaseException as error:
            if unresolved:  # resources wait on them: the engine, and this test, would wait forever
                failure = AssertionError(
                    f"__main__.py raised {type(error).__name__} ({error}) and left {len(unresolved)} deferred "
                    "output(s) unresolved: `pulumi up` would hang instead of reporting the error"
                )
                for resolve in list(unresolved):  # failed with that message, so the registrations end
                    resolve(pulumi.Output.from_input(failure).apply(_raise))
                raise failure from error
            raise
        return pulumi.Output.all(**exports)

    return settle(declare)


def _raise(error: BaseException) -> Any:
    raise error


def comparable_inputs(mocks: RecordingMocks) -> dict[str, Any]:
    """Every recorded resource's inputs as the engine compares them with the last deployment's, as JSON-ready values
    keyed "type::name": a file asset by its content's sha256 (the engine diffs assets by hash, not path), an archive
    by each member's; dict keys unordered (the engine's property maps are), list items in order (lists are not)."""

    def plain(value: Any) -> Any:
        if isinstance(value, pulumi.FileAsset):
            return {"file-sha256": hashlib.sha256(Path(value.path).read_bytes()).hexdigest()}
        if isinstance(value, pulumi.AssetArchive):
            return {"archive": {name: plain(asset) for name, asset in sorted(value.assets.items())}}
        if isinstance(value, pulumi.asset.Asset | pulumi.asset.Archive):
            raise AssertionError(f"no comparable form for {type(value).__name__}")
        if isinstance(value, dict):
            return {key: plain(item) for key, item in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    return {f"{typ}::{name}": plain(inputs) for (typ, name), inputs in sorted(mocks.resources.items())}


def declare_dev_stack(artifact: Path) -> dict[str, Any]:
    """Run __main__.py once, as `pulumi up` of the dev stack would (Pulumi.dev.yaml, the real handlers/ bundle and
    www/, `artifact` as the model), in fresh mocks; return comparable_inputs of everything it declared."""
    import yaml

    from components.settings import strip_namespace

    asyncio.set_event_loop(ENGINE_LOOP)
    mocks = _install()
    config = strip_namespace(yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8"))["config"])
    run_main(mocks, {**config, "modelArtifact": str(artifact)})
    return comparable_inputs(mocks)


def tracked_deferred_outputs() -> tuple[list[Callable[[Any], None]], Callable[[], Any]]:
    """(the resolvers not called yet, a pulumi.deferred_output that records them): the list shrinks as they are."""
    unresolved: list[Callable[[Any], None]] = []
    deferred_output = pulumi.deferred_output

    def tracked() -> tuple[pulumi.Output[Any], Callable[[Any], None]]:
        output, resolve = deferred_output()

        def tracked_resolve(value: Any) -> None:
            unresolved.remove(tracked_resolve)
            resolve(value)

        unresolved.append(tracked_resolve)
        return output, tracked_resolve

    return unresolved, tracked


def fake_lambda_asset_files(
    handler_dir: Path, distributions: tuple[str, ...] = ("aws-lambda-powertools",)
) -> dict[str, Path]:
    """Stand-in for components.lambda_bundle: the handler sources only (no Powertools walk)."""
    return {f"handlers/{p.relative_to(handler_dir).as_posix()}": p for p in sorted(handler_dir.rglob("*.py"))}


def lambda_bundle_stub() -> ModuleType:
    """components.lambda_bundle as __main__.py imports it, its asset the handler sources only (no Powertools walk)."""
    from components.lambda_bundle import BundleError

    stub = ModuleType("components.lambda_bundle")
    stub.lambda_asset_files = fake_lambda_asset_files  # type: ignore[attr-defined]
    stub.BundleError = BundleError  # type: ignore[attr-defined]
    return stub


@pytest.fixture
def program(mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run __main__.py with a fake artifact and the given config; returns the resolved exports."""
    monkeypatch.setitem(sys.modules, "components.lambda_bundle", lambda_bundle_stub())
    artifact, _ = make_artifact(tmp_path / "model")

    def run(transformation: Any = None, **config: Any) -> dict[str, Any]:
        config.setdefault("modelArtifact", str(artifact))
        return run_main(mocks, config, transformation)

    return run
