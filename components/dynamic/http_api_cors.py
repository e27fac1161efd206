"""CORS of the HTTP API, applied after the CloudFront distribution exists.

The API's CORS needs the site origin (the distribution's domain) while the distribution's CSP needs
the API origin: declaring CORS on the Api resource would be a dependency cycle. The Api resource
ignores corsConfiguration and this resource sets it with apigatewayv2 UpdateApi instead.

API Gateway takes one change to an API at a time and refuses another one meanwhile with ConflictException
"Unable to complete operation due to concurrent modification. Please try again later." The aws provider retries
that answer on every apigatewayv2 call (terraform-provider-aws internal/service/apigatewayv2/service_package.go);
botocore does not. `pulumi destroy` deletes this resource in the same wave as the API's stage and route (nothing
depends on any of them), so its calls retry that answer too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from components.dynamic import AwsProvider
from components.policies import http_api_cors


class HttpApiCorsError(ValueError):
    """A required input of the CORS resource is missing."""


# 74 s of pauses in all (2, 4 and 8 s, then 15 s four times): another change to the API (a stage or route deletion,
# an auto-deploy) takes seconds.
CONFLICT_ATTEMPTS = 8
CONFLICT_PAUSE_S = 2.0
CONFLICT_PAUSE_MAX_S = 15.0


def is_concurrent_modification(error: Exception) -> bool:
    """API Gateway's "another change to this API is under way, try again later" (HTTP 409)."""
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code == "ConflictException" and "try again later" in response.get("Error", {}).get("Message", "").lower()


def call_retrying_conflicts(
    call: Callable[..., Any],
    attempts: int = CONFLICT_ATTEMPTS,
    pause_s: float = CONFLICT_PAUSE_S,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> Any:
    """`call(**kwargs)`, asked again (pauses doubling up to CONFLICT_PAUSE_MAX_S) while API Gateway answers that
    another change to the API is under way; any other error, or that one on the last attempt, is raised."""
    for attempt in range(1, attempts):
        try:
            return call(**kwargs)
        except Exception as exc:
            if not is_concurrent_modification(exc):
                raise
            sleep(min(pause_s * 2 ** (attempt - 1), CONFLICT_PAUSE_MAX_S))
    return call(**kwargs)


def cors_rules(cors: dict[str, Any]) -> dict[str, Any]:
    """The CORS rules besides the origins, as a refresh compares them: names case-insensitive and unordered, since
    header and method names are."""
    return {
        "methods": sorted({m.upper() for m in cors.get("AllowMethods") or []}),
        "headers": sorted({h.lower() for h in cors.get("AllowHeaders") or []}),
        "expose": sorted({h.lower() for h in cors.get("ExposeHeaders") or []}),
        "max_age": cors.get("MaxAge"),
        "credentials": bool(cors.get("AllowCredentials")),
    }


# The rules do not depend on the origins; any valid one builds them.
PROGRAM_RULES = cors_rules(http_api_cors(["https://example.com"]))


def origin_set(origins: list[str] | None) -> list[str]:
    """The allowed origins as CORS compares them: a set (the browser's Origin is matched against each), case-insensitive
    as scheme and host are. The aws provider keeps allow_origins so too, as GetApi need not answer them in the order
    they were put: a refresh reading them back in another order is not drift."""
    return sorted({origin.lower() for origin in origins or []})


def diff_cors(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    replaces = [k for k in ("api_id", "region") if olds.get(k) != news.get(k)]
    # A state from before the rules were recorded has no "rules": nothing to compare, not drift.
    drifted = olds.get("rules") not in (None, PROGRAM_RULES)
    changed = replaces or drifted or origin_set(olds.get("origins")) != origin_set(news.get("origins"))
    return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)


class HttpApiCorsProvider(AwsProvider):
    pause = staticmethod(time.sleep)  # between attempts refused as concurrent modifications (tests record it)

    def _client(self, region: str) -> Any:
        return self.client("apigatewayv2", region=region)

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        for field in ("api_id", "region"):
            if not props.get(field):
                raise HttpApiCorsError(f"{field} is required, got {props.get(field)!r}")
        cors = http_api_cors(props.get("origins") or [])
        client = self._client(props["region"])
        call_retrying_conflicts(client.update_api, sleep=self.pause, ApiId=props["api_id"], CorsConfiguration=cors)
        return {
            "api_id": props["api_id"],
            "region": props["region"],
            "origins": cors["AllowOrigins"],
            "rules": cors_rules(cors),
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(props)
        return CreateResult(id_=f"{outs['api_id']}-cors", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_cors(olds, news)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: the CORS the API has now, so a console edit or removal shows as drift and the next
        `pulumi up` puts the program's CORS back (the Api resource ignores corsConfiguration)."""
        client = self._client(props["region"])
        try:
            api = client.get_api(ApiId=props["api_id"])
        except client.exceptions.NotFoundException:
            return ReadResult(id_="", outs={})  # the API is gone: so is this resource
        live = api.get("CorsConfiguration") or {}
        origins = list(live.get("AllowOrigins") or [])
        return ReadResult(id_=id_, outs={**props, "origins": origins, "rules": cors_rules(live)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        client = self._client(props["region"])
        try:
            call_retrying_conflicts(client.delete_cors_configuration, sleep=self.pause, ApiId=props["api_id"])
        except client.exceptions.NotFoundException:
            # The API itself is already gone (destroy order or manual cleanup): nothing left to undo.
            return


class HttpApiCors(Resource):
    origins: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        api_id: pulumi.Input[str],
        region: pulumi.Input[str],
        origins: pulumi.Input[list[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(HttpApiCorsProvider(), name, {"api_id": api_id, "region": region, "origins": origins}, opts)
