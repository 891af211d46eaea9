"""The deployment files under deploy/, checked with what runs offline here: the compose file against
the Compose Specification's schema, the Kubernetes manifests against the API's schemas (strict:
an unknown field fails), the systemd unit with systemd-analyze, the gateway config with thrifty's
own check. Nothing here builds an image or starts a container (no Docker engine on these
machines): the README says so. Each check is also shown to fail on a broken copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
MANIFESTS = ["namespace.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "secret.example.yaml"]


def _run(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def _compose_ok(path: Path) -> subprocess.CompletedProcess[str]:
    return _run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


def _k8s_ok(paths: list[Path], version: str = "1.37.0") -> subprocess.CompletedProcess[str]:
    return _run(BIN / "kubernetes-validate", "--strict", "--quiet", "-k", version, *paths)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_compose_file_follows_the_compose_spec_and_a_broken_one_does_not(tmp_path: Path) -> None:
    good = _compose_ok(DEPLOY / "docker-compose.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text((DEPLOY / "docker-compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_perod:"))
    assert _compose_ok(broken).returncode != 0


def test_compose_wires_replicas_behind_the_proxy_to_redis_and_pgvector() -> None:
    compose = _load(DEPLOY / "docker-compose.yaml")
    services = compose["services"]
    assert {"gateway", "proxy", "postgres", "redis"} <= set(services)
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] >= 2
    assert (ROOT / gateway["build"]["dockerfile"]).is_file()
    assert "pgvector" in services["postgres"]["image"]
    for name in ("postgres", "redis"):
        assert gateway["depends_on"][name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"]
    # Stopping must outlast the drain, or docker kills a stream the gateway would have finished.
    drain = float(gateway["environment"]["THRIFTY_DRAIN_TIMEOUT"])
    assert float(gateway["stop_grace_period"].removesuffix("s")) > drain
    # Every file a service mounts is in deploy/, and nginx sends to the gateway service.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), source
    assert "server gateway:4000" in (DEPLOY / "nginx.conf").read_text()
    assert "proxy_buffering off" in (DEPLOY / "nginx.conf").read_text()


def test_every_variable_compose_requires_is_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "docker-compose.yaml").read_text()))
    example = {line.split("=", 1)[0] for line in (DEPLOY / ".env.example").read_text().splitlines() if "=" in line}
    assert required and required <= example


def test_kubernetes_manifests_validate_strictly_and_a_broken_one_does_not(tmp_path: Path) -> None:
    paths = [DEPLOY / "kubernetes" / name for name in MANIFESTS]
    for version in ("1.37.0", "1.30.0"):
        result = _k8s_ok(paths, version)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "deployment.yaml"
    broken.write_text(
        (DEPLOY / "kubernetes" / "deployment.yaml").read_text().replace("readinessProbe:", "readynessProbe:")
    )
    assert _k8s_ok([broken]).returncode != 0


def test_kustomization_lists_every_manifest_and_the_config() -> None:
    kustomization = _load(DEPLOY / "kubernetes" / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).is_file(), resource
    listed = set(kustomization["resources"])
    assert listed == set(MANIFESTS) - {"secret.example.yaml"}  # the Secret is the user's to create
    (generated,) = kustomization["configMapGenerator"]
    key, _, source = generated["files"][0].partition("=")
    assert key == "gateway.yaml" and (DEPLOY / "kubernetes" / source).resolve() == DEPLOY / "gateway.yaml"


def test_deployment_probes_drain_and_runs_unprivileged() -> None:
    deployment = _load(DEPLOY / "kubernetes" / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"]
    drain = next(float(e["value"]) for e in container["env"] if e["name"] == "THRIFTY_DRAIN_TIMEOUT")
    assert pod["terminationGracePeriodSeconds"] > drain
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["envFrom"][0]["secretRef"]["name"] == "thrifty-secrets"
    secret = _load(DEPLOY / "kubernetes" / "secret.example.yaml")
    assert {"OPENAI_API_KEY", "PGPASSWORD", "THRIFTY_ADMIN_TOKEN"} <= set(secret["stringData"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/etc/thrifty"  # the image's THRIFTY_CONFIG is /etc/thrifty/gateway.yaml


def test_dockerfile_is_multi_stage_non_root_with_the_model_and_a_readiness_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK") for line in lines) and "/readyz" in text
    assert "[postgres,semantic]" in text  # the local embedding model ships in the image
    assert "THRIFTY_CONFIG=/etc/thrifty/gateway.yaml" in text
    assert "COPY deploy/gateway.yaml /etc/thrifty/gateway.yaml" in text


def _verify_unit(path: Path, tmp_path: Path) -> str:
    unit = tmp_path / "thrifty.service"
    # verify checks that ExecStart's program exists: point it at this environment's thrifty.
    unit.write_text(path.read_text().replace("/opt/thrifty/bin/thrifty", str(BIN / "thrifty")))
    result = _run("systemd-analyze", "verify", unit, cwd=tmp_path)
    return (result.stdout + result.stderr).strip() + ("" if result.returncode == 0 else f" (exit {result.returncode})")


def test_systemd_unit_verifies_and_a_broken_one_does_not(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze (Debian's systemd package) is needed"
    unit = DEPLOY / "systemd" / "thrifty.service"
    assert _verify_unit(unit, tmp_path) == ""
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Type=exec", "Type=sometimes"))
    assert "service type" in _verify_unit(broken, tmp_path)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.read_text()  # systemctl reload: thrifty's SIGHUP


@pytest.mark.parametrize("variables", [True, False])
def test_deploy_gateway_config_checks_clean(variables: bool) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    if variables:
        env |= {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    result = _run(BIN / "thrifty", "config", "check", DEPLOY / "gateway.yaml", env=env)
    if variables:
        assert result.returncode == 0, result.stdout + result.stderr
    else:  # the check names the unset key variables: a deployment without its Secret is caught
        assert result.returncode != 0 and "OPENAI_API_KEY" in result.stdout + result.stderr


def test_ci_cost_gate_workflow_is_a_valid_github_workflow() -> None:
    result = _run(
        BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", ROOT / "examples/ci/cost-gate.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
