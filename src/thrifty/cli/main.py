"""``thrifty``: the command line. Exit status 0 on success, 2 on bad input (one line saying what
was wrong), 1 on an internal failure -- never a traceback unless THRIFTY_DEBUG=1."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

import click

from thrifty.cli.alerts import alerts
from thrifty.cli.budgets import budgets
from thrifty.cli.cache import cache
from thrifty.cli.cache_eval import cache_calibrate
from thrifty.cli.config_cmd import config
from thrifty.cli.estimate import estimate
from thrifty.cli.evaluate import evaluate
from thrifty.cli.gate import gate
from thrifty.cli.keys import keys
from thrifty.cli.ledger import demo
from thrifty.cli.pricing import models, price
from thrifty.cli.reconcile import reconcile
from thrifty.cli.replay_cmd import replay
from thrifty.cli.report import report
from thrifty.cli.routing import router
from thrifty.cli.serve import serve
from thrifty.cli.simulate import simulate
from thrifty.cli.tokens import count

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version("thrifty"), prog_name="thrifty")
def cli() -> None:
    """thrifty: an LLM cost gateway -- exact token counts and prices, and a ledger of every call."""


for command in (serve, simulate, count, price, estimate, models, report, keys, config, demo, cache, budgets):
    cli.add_command(command)
cli.add_command(router)  # thrifty router train
cli.add_command(evaluate)  # thrifty eval cache | router
cli.add_command(replay)  # thrifty replay
cli.add_command(gate)  # thrifty gate
cli.add_command(alerts)  # thrifty alerts test | check
cli.add_command(reconcile)  # thrifty reconcile
cache.add_command(cache_calibrate)  # thrifty cache calibrate


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="thrifty", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else "", err=True)
        return 2
    except click.UsageError as error:
        command = (
            f"thrifty {error.ctx.command_path.split(' ', 1)[1]}"
            if error.ctx and " " in error.ctx.command_path
            else "thrifty"
        )
        click.echo(f"{command}: error: {error.format_message()}", err=True)
        return 2
    except click.ClickException as error:
        click.echo(f"thrifty: error: {error.format_message()}", err=True)
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        click.echo("thrifty: interrupted", err=True)
        return 130
    except BrokenPipeError:
        # Output piped into something that stopped reading (| head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if os.environ.get("THRIFTY_DEBUG"):
            raise
        from thrifty.core.redact import redact_text

        detail = redact_text(f"{type(error).__name__}: {error}")  # a driver's error may quote a URL
        click.echo(f"thrifty: internal error: {detail} (THRIFTY_DEBUG=1 for details)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
