"""CORS of the HTTP API, applied after the CloudFront distribution exists.

The API's CORS needs the site origin (the distribution's domain) while the distribution's CSP needs
the API origin: declaring CORS on the Api resource would be a dependency cycle. The Api resource
ignores corsConfiguration and this resource sets it with apigatewayv2 UpdateApi instead.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from components.dynamic import AwsProvider
from components.policies import http_api_cors


class HttpApiCorsError(ValueError):
    """A required input of the CORS resource is missing."""


def diff_cors(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    replaces = [k for k in ("api_id", "region") if olds.get(k) != news.get(k)]
    changed = replaces or list(olds.get("origins") or []) != list(news.get("origins") or [])
    return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)


class HttpApiCorsProvider(AwsProvider):
    def _client(self, region: str) -> Any:
        return self.client("apigatewayv2", region=region)

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        for field in ("api_id", "region"):
            if not props.get(field):
                raise HttpApiCorsError(f"{field} is required, got {props.get(field)!r}")
        cors = http_api_cors(props.get("origins") or [])
        self._client(props["region"]).update_api(ApiId=props["api_id"], CorsConfiguration=cors)
        return {"api_id": props["api_id"], "region": props["region"], "origins": cors["AllowOrigins"]}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(props)
        return CreateResult(id_=f"{outs['api_id']}-cors", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_cors(olds, news)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """`pulumi refresh`: the origins the API allows now, so a console edit or removal shows as drift and the
        next `pulumi up` puts the program's origins back (the Api resource ignores corsConfiguration)."""
        client = self._client(props["region"])
        try:
            api = client.get_api(ApiId=props["api_id"])
        except client.exceptions.NotFoundException:
            return ReadResult(id_="", outs={})  # the API is gone: so is this resource
        origins = list((api.get("CorsConfiguration") or {}).get("AllowOrigins") or [])
        return ReadResult(id_=id_, outs={**props, "origins": origins})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        client = self._client(props["region"])
        try:
            client.delete_cors_configuration(ApiId=props["api_id"])
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
