"""Imported by the Lambda sandboxes' fork server: the handler, once, so that every sandbox forked from it starts warm.

The handler reads its configuration at import and refuses a bad one there (a ConfigError, an unknown LOG_LEVEL, an
invalid region). The fork server survives only an ImportError from its preloads: anything else killed it, printing the
handler's traceback, and the server saw only "EOFError: unexpected EOF" in a traceback of its own. So any failure is
an ImportError here, which the fork server skips; each sandbox then imports the handler itself and meets the error
again, which its caller receives (LambdaSandboxes.warm: the stack stops at start, naming it in one line).
"""

from __future__ import annotations

try:
    import handlers.inference_proxy  # noqa: F401
except Exception as e:
    raise ImportError(f"the Lambda handler failed at import: {e}") from e
