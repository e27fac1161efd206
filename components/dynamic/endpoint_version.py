"""Retires a superseded SageMaker EndpointConfiguration and Model, but only once no endpoint runs on them.

Pulumi deletes what a rollout replaced at the end of the update, or, when the update failed, at the start of the
next one. After SageMaker rolled an update back (the new configuration failed to start), the endpoint still runs on
the previous configuration; deleting it then breaks every later UpdateEndpoint ("Could not find endpoint
configuration", terraform-provider-aws #40048, #48997), and only replacing the endpoint (downtime) recovers.

So the Model and EndpointConfiguration are declared with `retain_on_delete` and one of these resources is replaced
with them: its delete asks SageMaker what the endpoint runs on first. It deletes the configuration unless the
endpoint is on it (or between states), and the model unless the endpoint's configuration still uses it (a memory
or concurrency change keeps the Model). The Endpoint depends on it, so `pulumi destroy` deletes the endpoint first
and then both. When the endpoint is gone (destroy, or a rename in the same update), it keeps whatever another
endpoint of the region still runs on.

Each version also records, when it is created, the configuration (and its Models) the endpoint runs then: the one
its rollout supersedes. Its delete retires those too, on the same rules. Their own version usually has by then; but
after an update that failed before the endpoint moved, the next `pulumi up` deletes that version first (Pulumi runs
pending deletes before anything else), which keeps what the endpoint still runs, and then moves the endpoint: this
record is what is left to retire them, at a later rollout or `pulumi destroy`.

The aws provider's Endpoint delete returns as soon as DescribeEndpoint says Deleting: its wait for the deletion
counts that status as gone (terraform-provider-aws internal/service/sagemaker/endpoint.go, findEndpointByName; the
"Cannot create already existing endpoint" of #40080). So the endpoint is usually still Deleting here, on this very
configuration: the delete waits for it to be gone, which also leaves its name free for the next `pulumi up`.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, UpdateResult

from components.dynamic import AwsProvider

# Any other status means the endpoint may still switch to, or fall back on, the configuration.
SETTLED_STATUSES = frozenset({"InService", "Failed", "OutOfService"})
REQUIRED = ("endpoint_name", "region", "config_name", "model_name")
# What the endpoint ran when the version was created, kept through updates: see EndpointVersionProvider.create.
SUPERSEDED = ("superseded_config", "superseded_models")
# How long an endpoint SageMaker is deleting is waited for: 10 minutes, as the aws provider's own wait.
DELETING_POLL_S = 10.0
DELETING_POLLS = 60


class EndpointVersionError(ValueError):
    """A required input of the endpoint version resource is missing."""


class EndpointStillDeletingError(RuntimeError):
    """The endpoint was still being deleted when the wait ended; the message names what was not deleted."""


def still_deleting_message(endpoint_name: str, region: str, config_name: str, model_name: str) -> str:
    minutes = DELETING_POLL_S * DELETING_POLLS / 60
    return (
        f"SageMaker endpoint {endpoint_name!r} is still Deleting after {minutes:.0f} minutes, so its endpoint "
        f"configuration {config_name!r} and model {model_name!r} were not deleted. Once it is gone (`aws sagemaker "
        f"wait endpoint-deleted --endpoint-name {endpoint_name} --region {region}`), run the `pulumi destroy` (or "
        f"`pulumi up`) again: it retries this. Or delete them: `aws sagemaker delete-endpoint-config "
        f"--endpoint-config-name {config_name} --region {region}`, `aws sagemaker delete-model --model-name "
        f"{model_name} --region {region}`."
    )


def _not_found(error: Exception) -> bool:
    """SageMaker answers a missing endpoint, configuration or model with a ValidationException "Could not find"."""
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code == "ValidationException" and "could not find" in response.get("Error", {}).get("Message", "").lower()


def what_to_retire(
    config_name: str, model_name: str, running: tuple[str, str | None, frozenset[str]] | None
) -> tuple[bool, bool]:
    """(delete the configuration?, delete the model?) given what the endpoint runs: None when it does not exist,
    else (status, configuration name, the models of that configuration's variants)."""
    if running is None:
        return True, True
    status, running_config, running_models = running
    if status not in SETTLED_STATUSES or running_config == config_name:
        return False, False
    return True, model_name not in running_models


def diff_endpoint_version(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    """A new configuration or model is a new version (the old one retired after the update); a renamed endpoint
    or another region is the same version, recorded in place, so retiring never looks at an endpoint that is gone
    while the new one still runs on this configuration."""
    replaces = [k for k in ("config_name", "model_name") if olds.get(k) != news.get(k)]
    updates = [k for k in ("endpoint_name", "region") if olds.get(k) != news.get(k)]
    return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)


class EndpointVersionProvider(AwsProvider):
    pause = staticmethod(time.sleep)  # between looks at an endpoint being deleted (tests record it)

    def _outs(self, props: dict[str, Any]) -> dict[str, Any]:
        for field in REQUIRED:
            if not props.get(field):
                raise EndpointVersionError(f"{field} is required, got {props.get(field)!r}")
        return {k: props[k] for k in REQUIRED}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._outs(props)
        return CreateResult(id_=outs["config_name"], outs={**outs, **self._superseded(outs)})

    def _superseded(self, outs: dict[str, Any]) -> dict[str, Any]:
        """The configuration (and its Models) the endpoint runs as this version is created, if another: the one this
        rollout supersedes. Its own version retires it at the end of a rollout that succeeds. But after an update that
        failed before the endpoint moved, the next `pulumi up` deletes that version first, which rightly keeps what the
        endpoint still runs; once the endpoint moves, only this record is left to retire it."""
        client = self.client("sagemaker", region=outs["region"])
        try:
            endpoint = client.describe_endpoint(EndpointName=outs["endpoint_name"])
        except client.exceptions.ClientError as e:
            if not _not_found(e):
                raise
            return {}  # the first rollout: the endpoint is created after this
        running_config = endpoint.get("EndpointConfigName")
        if not running_config or running_config == outs["config_name"]:
            return {}
        _status, _config, models = self._running(client, endpoint, outs["config_name"], "")
        return {"superseded_config": running_config, "superseded_models": sorted(m for m in models if m)}

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_endpoint_version(olds, news)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**self._outs(news), **{k: olds[k] for k in SUPERSEDED if k in olds}})

    @staticmethod
    def _running(
        client: Any, endpoint: dict[str, Any], config_name: str, model_name: str
    ) -> tuple[str, str, frozenset[str]]:
        """(status, configuration, models) an endpoint runs, from its DescribeEndpoint answer: every variant's model
        (another stack's endpoint, or one made by hand, may have several)."""
        running_config = endpoint.get("EndpointConfigName")
        running_models: frozenset[str] = frozenset()
        if running_config and running_config != config_name:
            try:
                described = client.describe_endpoint_config(EndpointConfigName=running_config)
                # A shadow variant runs its Model too; a variant hosting inference components names none.
                variants = described["ProductionVariants"] + described.get("ShadowProductionVariants", [])
            except client.exceptions.ClientError as e:
                # The endpoint runs on a configuration someone deleted (by hand, or as in #40048): which
                # Model it runs is unknown, so the model stays; failing here would fail every later up.
                if not _not_found(e):
                    raise
                variants = [{"ModelName": model_name}]
            running_models = frozenset(variant["ModelName"] for variant in variants if "ModelName" in variant)
        return endpoint.get("EndpointStatus"), running_config, running_models

    def _used_elsewhere(self, client: Any, config_name: str, model_name: str) -> tuple[bool, bool]:
        """(does any endpoint run the configuration?, the model?): asked when this version's endpoint is gone. It
        is gone on `pulumi destroy`, and also when the endpoint was renamed in the same update that replaced this
        version (endpointName and memorySizeMb changed together): the renamed endpoint, created first, may run a
        new configuration on this very Model."""
        used_config = used_model = False
        for page in client.get_paginator("list_endpoints").paginate():
            for summary in page.get("Endpoints", []):
                try:
                    endpoint = client.describe_endpoint(EndpointName=summary["EndpointName"])
                except client.exceptions.ClientError as e:
                    if not _not_found(e):  # deleted since the listing: it runs nothing
                        raise
                    continue
                if endpoint.get("EndpointStatus") == "Deleting":  # it will never run anything again
                    continue
                _status, running_config, running_models = self._running(client, endpoint, config_name, model_name)
                used_config = used_config or running_config == config_name
                used_model = used_model or running_config == config_name or model_name in running_models
        return used_config, used_model

    def _endpoint_unless_deleted(self, client: Any, props: dict[str, Any]) -> dict[str, Any] | None:
        """DescribeEndpoint's answer, or None once the endpoint does not exist; one being deleted is waited for."""
        for looks in range(DELETING_POLLS + 1):
            try:
                endpoint = client.describe_endpoint(EndpointName=props["endpoint_name"])
            except client.exceptions.ClientError as e:
                if not _not_found(e):
                    raise
                return None
            if endpoint.get("EndpointStatus") != "Deleting":
                return endpoint
            if looks < DELETING_POLLS:
                self.pause(DELETING_POLL_S)
        raise EndpointStillDeletingError(
            still_deleting_message(props["endpoint_name"], props["region"], props["config_name"], props["model_name"])
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        client = self.client("sagemaker", region=props["region"])
        endpoint = self._endpoint_unless_deleted(client, props)
        self._retire(client, endpoint, props["config_name"], props["model_name"])
        superseded = props.get("superseded_config")
        if superseded and superseded != props["config_name"]:
            # Usually its own version retired it already (then each delete below finds nothing); kept, as its own
            # are, if the endpoint still runs on it. A configuration without a Model of its own retires alone.
            for model_name in props.get("superseded_models") or [None]:
                self._retire(client, endpoint, superseded, model_name)

    def _retire(self, client: Any, endpoint: dict[str, Any] | None, config_name: str, model_name: str | None) -> None:
        """Deletes the configuration and the model, each unless the endpoint (or, when it is gone, any endpoint of
        the region) runs on it; a model of None is none to delete."""
        if endpoint is None:
            used_config, used_model = self._used_elsewhere(client, config_name, model_name)
            delete_config, delete_model = not used_config, not used_model
        else:
            running = self._running(client, endpoint, config_name, model_name)
            delete_config, delete_model = what_to_retire(config_name, model_name, running)
        calls = [
            (delete_config, client.delete_endpoint_config, {"EndpointConfigName": config_name}),
            (delete_model and model_name is not None, client.delete_model, {"ModelName": model_name}),
        ]
        for wanted, call, kwargs in calls:
            if not wanted:
                continue
            try:
                call(**kwargs)
            except client.exceptions.ClientError as e:
                if not _not_found(e):  # already gone (deleted by hand, or a retried destroy): nothing to do
                    raise


class EndpointVersion(Resource):
    """The EndpointConfiguration and Model one rollout deployed; deleting it retires them when unused."""

    def __init__(
        self,
        name: str,
        *,
        endpoint_name: pulumi.Input[str],
        region: pulumi.Input[str],
        config_name: pulumi.Input[str],
        model_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            EndpointVersionProvider(),
            name,
            {"endpoint_name": endpoint_name, "region": region, "config_name": config_name, "model_name": model_name},
            opts,
        )
