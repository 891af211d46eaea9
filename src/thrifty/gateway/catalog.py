"""The routes SDKs call besides the calls themselves: the model list (in OpenAI's or Anthropic's
shape), one model, and Anthropic's token count (``/v1/messages/count_tokens``).

The Anthropic SDK always sends ``anthropic-version``; that header picks Anthropic's shape for the
model routes, so ``anthropic.Anthropic(base_url=<thrifty>).models.list()`` works as does
``openai.OpenAI(base_url=<thrifty>).models.list()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from thrifty.core.messages import RequestError
from thrifty.core.tokens.counter import TokenCounter
from thrifty.gateway.intake import Rejection
from thrifty.pipeline.steps.dispatch import Routes
from thrifty.web.asgi import Scope, header
from thrifty.wire.anthropic_messages import parse_anthropic_request

__all__ = ["ROUTES", "Catalog", "unknown_model", "unknown_route", "wants_anthropic_shape"]

ROUTES = (
    "POST /v1/chat/completions",
    "POST /v1/messages",
    "POST /v1/messages/count_tokens",
    "POST /v1/responses",
    "POST /v1/embeddings",
    "GET /v1/models",
    "GET /v1/models/{id}",
)
"""What the gateway answers (besides /healthz, /readyz and /admin), named in every 404."""

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""The ``created`` date the model routes give: thrifty's models are configured, not released, and a
date that changed on every call would make two listings differ for nothing."""


def wants_anthropic_shape(scope: Scope) -> bool:
    return header(scope, b"anthropic-version") is not None


def unknown_model(name: str, served: list[str]) -> Rejection:
    """A 404 for a model this gateway does not serve, naming the ones it does."""
    return Rejection(
        404, f"unknown model {name!r}; this gateway serves: {', '.join(served)}", "not_found_error", "model_not_found"
    )


def unknown_route(method: str, path: str) -> Rejection:
    """A 404 that says what is served, and what was probably meant (a path without ``/v1``)."""
    hint = ""
    if not path.startswith("/v1/") and any(route.endswith(" /v1" + path) for route in ROUTES):
        hint = f"; did you mean /v1{path}? (set the client's base URL to end in /v1)"
    elif path == "/v1/completions":
        hint = "; the legacy completions API is not served: use /v1/chat/completions"
    message = f"no route {method} {path}{hint}; this gateway serves: {', '.join(ROUTES)}"
    return Rejection(404, message, kind="not_found_error", code="not_found")


@dataclass(frozen=True)
class Catalog:
    routes: Routes
    counter: TokenCounter

    def models(self, anthropic: bool) -> dict[str, Any]:
        names = self.routes.names()
        if anthropic:
            return {
                "data": [self._anthropic_model(name) for name in names],
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        return {"object": "list", "data": [self._openai_model(name) for name in names]}

    def model(self, name: str, anthropic: bool) -> dict[str, Any]:
        if self.routes.get(name) is None:
            raise unknown_model(name, self.routes.names())
        return self._anthropic_model(name) if anthropic else self._openai_model(name)

    def count_tokens(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
        """Anthropic's count: ``{"input_tokens": N}`` for a messages body, from thrifty's own
        counter. Claude's tokenizer is not published, so for Claude models the count is an estimate;
        ``x-thrifty-count`` says ``exact`` or ``approximate`` and ``x-thrifty-count-method`` how."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Rejection(400, "model: is required (a string)")
        route = self.routes.get(model)
        if route is None:
            raise unknown_model(model, self.routes.names())
        try:  # count_tokens takes no max_tokens; the parser wants one, and it does not change the count
            request = parse_anthropic_request({**body, "max_tokens": 1, "stream": False})
        except RequestError as error:
            raise Rejection(400, str(error)) from None
        counted = self.counter.count_request(request, route.priced_as)
        headers = [
            (b"x-thrifty-count", b"approximate" if counted.approximate else b"exact"),
            (b"x-thrifty-count-method", counted.method.encode("ascii", "replace")),
        ]
        return {"input_tokens": counted.input_tokens}, headers

    def _openai_model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": int(_EPOCH.timestamp()), "owned_by": "thrifty"}

    def _anthropic_model(self, name: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": _EPOCH.isoformat().replace("+00:00", "Z"),
        }
