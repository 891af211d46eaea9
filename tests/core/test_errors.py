"""The one exception hierarchy (thrifty.errors): every exception class in the package belongs to it
or is listed here as internal, each family answers with its documented status and type, and both
APIs' error shapes come out of one place. Round trips through the gateway are in the gateway tests."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import click
import orjson
import pytest

import thrifty
from thrifty import errors
from thrifty.cli.common import CliError
from thrifty.errors import (
    KIND_BY_STATUS,
    AuthError,
    BodyTooLarge,
    BodyTooSlow,
    Closed,
    ConfigError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    Rejection,
    StoreError,
    ThriftyError,
    TooLarge,
    TransportError,
    Unavailable,
    UnknownModelError,
    UpstreamError,
    error_body,
    error_response,
)

INTERNAL = {
    f"thrifty.simulator.{name}": "the simulated provider's own answers and plumbing: it plays the upstream, "
    "apart from the product, and imports nothing of it beyond core's wire formats (issue 9.6)"
    for name in ("admin.AdminError", "common.ApiError", "asgi.BodyTooLarge", "asgi.ClientGone")
} | {
    "thrifty.wire.openai_batches.LineProblem": "one input line's problem, caught where a batch file is read and "
    "returned in the batch's own errors list (OpenAI's BatchError shape); it never reaches a face",
}
"""Exception classes that are not thrifty's errors, and why."""

FAMILIES: list[tuple[ThriftyError, int, str]] = [
    (ThriftyError("x"), 500, "api_error"),
    (InvalidRequest("messages[0]", "x"), 400, "invalid_request_error"),
    (AuthError("x"), 401, "authentication_error"),
    (NotFound("x"), 404, "not_found_error"),
    (TooLarge("x"), 413, "request_too_large"),
    (LimitExceeded("x", retry_after_s=2.0), 429, "rate_limit_error"),
    (ConfigError("x"), 500, "api_error"),
    (UpstreamError("x"), 502, "api_error"),
    (StoreError("x"), 503, "api_error"),
    (Unavailable("x"), 503, "api_error"),
    (Closed("x"), 503, "api_error"),
]
"""Each family, the status it is answered with and its error type (as the errors.py docstring says)."""


def _exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(thrifty.__path__, "thrifty."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_exception_class_is_a_thrifty_error_or_listed_as_internal() -> None:
    classes = _exception_classes()
    names = {f"{c.__module__}.{c.__qualname__}" for c in classes}
    strays = sorted(
        n
        for c in classes
        if not issubclass(c, ThriftyError) and (n := f"{c.__module__}.{c.__qualname__}") not in INTERNAL
    )
    assert strays == [], "put these in thrifty.errors' hierarchy, or list them in INTERNAL with a reason"
    assert sorted(set(INTERNAL) - names) == [], "INTERNAL lists classes that no longer exist"
    assert len(classes) > 30


@pytest.mark.parametrize(("error", "status", "kind"), FAMILIES, ids=lambda v: type(v).__name__)
def test_each_family_answers_with_its_status_in_both_shapes(error: ThriftyError, status: int, kind: str) -> None:
    code = error.code or kind
    answered, raw = error_response(error, "openai")
    assert answered == status
    assert orjson.loads(raw) == {"error": {"message": str(error), "type": kind, "param": None, "code": code}}
    answered, raw = error_response(error, "anthropic")
    assert answered == status
    assert orjson.loads(raw) == {"type": "error", "error": {"type": kind, "message": str(error)}}
    if status in KIND_BY_STATUS:
        assert KIND_BY_STATUS[status] == kind, "the status table and the family disagree"


def test_every_class_of_the_hierarchy_renders_in_both_shapes() -> None:
    samples: dict[type[ThriftyError], tuple[Any, ...]] = {
        errors.RequestError: ("a", "b"),
        errors.ResponseShapeError: ("a", "b"),
        InvalidRequest: ("a", "b"),
        UnknownModelError: ("m", None, ()),
        BodyTooLarge: (10,),
        BodyTooSlow: (2.5,),
        errors.UsageError: ("negative",),
        errors.BudgetError: ("negative",),
        Rejection: (400, "x"),
        CliError: ("x",),
    }
    for cls in {c for c in _exception_classes() if issubclass(c, ThriftyError)}:
        if cls is TransportError:
            error: ThriftyError = TransportError("x", timeout=True, may_be_billed=False)
        else:
            error = cls(*samples.get(cls, ("x",)))
        status, raw = error_response(error, "openai")
        assert 400 <= status < 600 and set(orjson.loads(raw)["error"]) == {"message", "type", "param", "code"}, cls
        status, raw = error_response(error, "anthropic")
        body = orjson.loads(raw)
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, cls


def test_the_old_homes_and_the_built_in_bases_are_kept() -> None:
    homes = {
        "thrifty.core.messages": ("RequestError", ValueError),
        "thrifty.core.documents": ("ConfigError", ValueError),
        "thrifty.config.files": ("ConfigError", ValueError),
        "thrifty.core.pricing": ("UnknownModelError", LookupError),
        "thrifty.core.usage": ("UsageError", ValueError),
        "thrifty.core.budgets": ("BudgetError", ValueError),
        "thrifty.wire.translate._common": ("ResponseShapeError", ValueError),
        "thrifty.core.routing.learned": ("RouterFileError", ValueError),
        "thrifty.core.routing.outcomes": ("OutcomesError", ValueError),
        "thrifty.core.tokens.encodings": ("EncodingIntegrityError", RuntimeError),
        "thrifty.semantic.calibration": ("PairFileError", ValueError),
        "thrifty.semantic.index": ("IndexFileError", ValueError),
        "thrifty.semantic.embedder": ("EmbedderError", RuntimeError),
        "thrifty.client.runtime": ("ThriftyClosed", RuntimeError),
        "thrifty.pipeline.conversions": ("BadUpstreamResponse", Exception),
        "thrifty.providers.transport": ("TransportError", Exception),
        "thrifty.stores.budgets": ("StoreUnavailable", Exception),
        "thrifty.gateway.intake": ("Rejection", Exception),
        "thrifty.web.asgi": ("BodyTooSlow", Exception),
    }
    for module, (name, base) in homes.items():
        cls = getattr(importlib.import_module(module), name)
        assert cls is getattr(errors, name) and issubclass(cls, base), f"{module}.{name}"
    assert issubclass(CliError, click.ClickException) and CliError("x").exit_code == 2


def test_a_generic_type_is_refined_by_the_status_and_an_explicit_one_kept() -> None:
    assert error_response(Rejection(413, "too big"), "openai")[1] == error_body(
        "openai", 413, "too big", "request_too_large"
    )
    assert orjson.loads(error_response(Rejection(405, "takes POST"), "anthropic")[1])["error"]["type"] == (
        "invalid_request_error"
    )
    status, raw = error_response(Rejection(404, "no such model", "not_found_error", "model_not_found"), "openai")
    assert status == 404 and orjson.loads(raw)["error"]["code"] == "model_not_found"
    assert error_response(Rejection(500, "internal error in the gateway", "api_error"), "anthropic")[0] == 500
    assert error_response(BodyTooSlow(3), "openai")[0] == 408
    assert orjson.loads(error_response(BodyTooSlow(3), "openai")[1])["error"]["code"] == "request_timeout"


def test_messages_are_unchanged_by_the_move() -> None:
    assert str(InvalidRequest("", "the request body is empty")) == "the request body is empty"
    assert str(errors.RequestError("messages[2].content", "expected a string")) == (
        "messages[2].content: expected a string"
    )
    assert str(errors.UsageError("input_tokens must not be negative, got -1")).startswith("input_tokens")
    assert str(BodyTooLarge(10)) == "the request body is larger than the limit of 10 bytes"
    assert str(UnknownModelError("gpt-5x", "openai", ["gpt-5"])) == (
        "unknown model 'gpt-5x' (provider 'openai'): no price is known for it; did you mean gpt-5?"
    )
    assert LimitExceeded("slow down", retry_after_s=1.5).retry_after_s == 1.5
