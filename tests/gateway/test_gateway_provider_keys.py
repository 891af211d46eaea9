"""A gateway never starts without its provider keys by accident, and a provider refusing the
gateway's own key is told apart from thrifty refusing the client's."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest

from tests.cli.test_cli_gateway import free_port
from tests.gateway.test_gateway_auth import _banner
from tests.support.gateway import running_gateway
from thrifty.cli.main import main

HELLO = [{"role": "user", "content": "hi"}]


def _config(tmp_path: Path, simulator_url: str, extra: str = "") -> Path:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"server: {{port: {free_port()}}}\n"
        f'storage: {{ledger: "sqlite:///{tmp_path / "ledger.db"}"}}\n'
        f'providers: {{openai: {{kind: openai, base_url: "{simulator_url}/v1", api_key_env: THRIFTY_UNSET_KEY_XYZ}}}}\n'
        "models: [{name: gpt-4o-mini, provider: openai}]\n" + extra
    )
    return config


def test_serve_refuses_to_start_when_a_provider_key_variable_is_unset(
    simulator_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("THRIFTY_UNSET_KEY_XYZ", raising=False)
    assert main(["serve", "--config", str(_config(tmp_path, simulator_url))]) == 2
    err = capsys.readouterr().err
    assert "providers.openai.api_key_env: $THRIFTY_UNSET_KEY_XYZ is not set" in err
    assert "allow_missing_keys" in err


def test_allow_missing_keys_starts_with_a_loud_warning(simulator_url: str, tmp_path: Path) -> None:
    banner = _banner(_config(tmp_path, simulator_url, "allow_missing_keys: true\n"))
    assert "WARNING: providers.openai.api_key_env: $THRIFTY_UNSET_KEY_XYZ is not set" in banner
    assert "keys:" in banner  # it did start


def test_a_provider_refusing_the_gateways_key_is_not_a_client_auth_error(
    simulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_KEY_FOR_AUTH_TEST", "sk-wrong")
    providers = {
        "openai": {"kind": "openai", "base_url": f"{simulator_url}/v1", "api_key_env": "SIM_KEY_FOR_AUTH_TEST"},
        "anthropic": {"kind": "anthropic", "base_url": simulator_url},
    }
    with running_gateway(simulator_url, tmp_path, providers=providers) as gateway:
        gateway.fault("gpt-4o-mini", "401")
        with pytest.raises(openai.APIStatusError) as refused:
            openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0).chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
            )
        assert refused.value.status_code == 502 and not isinstance(refused.value, openai.AuthenticationError)
        body = refused.value.body
        assert isinstance(body, dict) and body["code"] == "upstream_auth_failed"
        assert "openai" in body["message"] and "$SIM_KEY_FOR_AUTH_TEST" in body["message"]
        gateway.fault("claude-haiku-4-5", "403")
        with pytest.raises(anthropic.APIStatusError) as refused_too:
            anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0).messages.create(
                model="claude-haiku-4-5",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
            )
        assert refused_too.value.status_code == 502
        assert "no api_key_env is configured" in str(refused_too.value.body)
