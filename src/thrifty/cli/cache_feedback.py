"""``thrifty cache calibrate --from-feedback``: each namespace's semantic-cache threshold from the
verdicts applications sent on its hits (``POST /v1/thrifty/feedback``), not from a pairs file.

Hits are only ever seen above the threshold in force, so the labels can say "raise it" (the
judged hits below some similarity were too often wrong) but never "lower it": a suggestion below
the current threshold is reported and not applied."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from thrifty.cli.common import CliError, emit_json

__all__ = ["calibrate_from_feedback"]


def calibrate_from_feedback(
    config_file: Path, target: float, since: datetime | None, write: bool, min_labels: int, as_json: bool
) -> None:
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import GatewayConfig, load_gateway_config
    from thrifty.core.feedback import suggest_threshold
    from thrifty.stores.ledger import open_ledger
    from thrifty.stores.ledger.feedback import FeedbackStore

    if not config_file.exists():
        raise CliError(f"{config_file}: no such file (--from-feedback reads its storage.ledger)")
    try:
        config: GatewayConfig = load_gateway_config(config_file)
    except ConfigError as error:
        raise CliError(str(error)) from None
    url = config.storage.ledger
    try:
        open_ledger(url).close()  # migrated: the feedback table exists
        store = FeedbackStore(url)
        try:
            labels = store.labels(since)
        finally:
            store.close()
    except Exception as error:
        from thrifty.core.redact import redact_url

        raise CliError(f"{redact_url(url)}: cannot read feedback: {type(error).__name__}") from None
    semantic = config.cache.semantic
    rows: list[dict[str, Any]] = []
    raise_to: dict[str, float] = {}
    for suggestion in suggest_threshold(labels, target):
        current = semantic.threshold_for(suggestion.namespace, config.cache.exact)
        proposed = suggestion.threshold
        if suggestion.labels < min_labels:
            action = f"keep: {suggestion.labels} labels, fewer than --min-labels {min_labels}"
        elif proposed is None:
            action = "keep: no threshold the labels cover reaches the target; gather more labels"
        elif proposed > current:
            action = f"raise to {proposed}"
            raise_to[suggestion.namespace] = proposed
        else:
            action = "keep: the labels ask for no higher threshold"
        rows.append(
            {
                "namespace": suggestion.namespace,
                "labels": suggestion.labels,
                "wrong": suggestion.wrong,
                "precision": round(suggestion.precision, 4),
                "precision_low": round(suggestion.low, 4),
                "precision_high": round(suggestion.high, 4),
                "current_threshold": current,
                "suggested_threshold": proposed,
                "action": action,
            }
        )
    if write and raise_to:
        _write_namespaces(config_file, raise_to)
    if as_json:
        emit_json({"config": str(config_file), "target_precision": target, "written": write, "namespaces": rows})
        return
    if not rows:
        click.echo("no feedback on semantic hits yet: nothing to calibrate")
        return
    for row in rows:
        click.echo(
            f"{row['namespace']}: {row['labels']} judged hits, {row['wrong']} wrong, precision "
            f"{row['precision']:.3f} (95% {row['precision_low']:.3f}-{row['precision_high']:.3f}), "
            f"threshold {row['current_threshold']}: {row['action']}"
        )
    if raise_to and not write:
        click.echo("cache.semantic.namespaces to apply (or run again with --write):")
        for namespace, threshold in sorted(raise_to.items()):
            click.echo(f"  {namespace!r}: {{threshold: {threshold}}}")


def _write_namespaces(path: Path, thresholds: dict[str, float]) -> None:
    """The config with ``cache.semantic.namespaces.NS.threshold`` set (the file is rewritten:
    comments are not kept)."""
    import orjson
    import yaml

    from thrifty.config.files import ConfigError, load_document

    try:
        document = load_document(path) or {}
    except ConfigError as error:
        raise CliError(str(error)) from None
    cache = document.setdefault("cache", {})
    semantic = cache.setdefault("semantic", {})
    namespaces = semantic.setdefault("namespaces", {})
    for namespace, threshold in thresholds.items():
        namespaces.setdefault(namespace, {})["threshold"] = threshold
    try:
        plain = orjson.loads(orjson.dumps(document, default=float))  # the reader's Decimals as YAML numbers
        path.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
    except OSError as error:
        raise CliError(f"{path}: cannot be written: {error.strerror}") from None
