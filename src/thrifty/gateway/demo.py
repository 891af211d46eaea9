"""The built-in demo config: four real models at their real prices, served by the simulator."""

from __future__ import annotations

from pathlib import Path

from thrifty.config.gateway import GatewayConfig

__all__ = ["demo_config"]


def demo_config(simulator_url: str, home: Path, host: str, port: int) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "server": {"host": host, "port": port},
            # The demos' own store and journal: simulated spend never lands in the real ledger.
            "storage": {"ledger": f"sqlite:///{home / 'demo.db'}", "journal_dir": str(home / "demo-journal")},
            "providers": {
                "openai": {"kind": "openai", "base_url": f"{simulator_url}/v1"},
                "anthropic": {"kind": "anthropic", "base_url": simulator_url},
            },
            "models": [
                {"name": "gpt-4o", "provider": "openai", "fallbacks": ["gpt-4o-mini"]},
                {"name": "gpt-4o-mini", "provider": "openai"},
                {"name": "claude-sonnet-4-5", "provider": "anthropic", "fallbacks": ["claude-haiku-4-5"]},
                {"name": "claude-haiku-4-5", "provider": "anthropic"},
                {"name": "text-embedding-3-small", "provider": "openai"},
            ],
        }
    )
