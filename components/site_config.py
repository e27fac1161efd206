"""`config.js`: the one place the web UI learns the API URL.

The CDN component uploads it built from the API URL stack output; the local stack serves it from
this same function, so both tiers give the browser exactly the same shape.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

CONFIG_JS_CONTENT_TYPE = "application/javascript; charset=utf-8"
# config.js names the API the page calls, and the API's URL changes whenever the HTTP API is replaced: a stale copy
# would send every request to an API that is gone, so neither the browser nor an edge may keep one.
CONFIG_JS_CACHE_CONTROL = "no-cache, no-store, must-revalidate"


def render_config_js(api_url: str) -> str:
    """Render config.js for an API base URL (no trailing slash; the UI appends /predict)."""
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"api_url must be an absolute http(s) URL, got {api_url!r}")
    if "@" in parts.netloc:  # fetch() refuses a URL with credentials, and config.js is public
        raise ValueError(f"api_url must not carry a user or password, got {api_url!r}")
    if "?" in api_url or "#" in api_url:  # an empty query or fragment too: parts holds none
        raise ValueError(f"api_url must not carry a query or fragment, got {api_url!r}")
    config = {"apiUrl": api_url.rstrip("/")}
    # json.dumps output is a valid JS literal; "</" is escaped so the file is safe even if inlined.
    body = json.dumps(config, sort_keys=True).replace("</", "<\\/")
    return f"window.APP_CONFIG = Object.freeze({body});\n"
