"""The container set-up: Compose validates, and Prometheus scrapes every process it starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.metrics_exposition import GROUP_PORT_OFFSETS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = {"gateway", "worker", "relay", "scheduler"}


@pytest.fixture(scope="module")
def compose(compose_cli: list[str]) -> dict[str, Any]:
    """The Compose file as the Compose CLI resolves it (anchors merged, variables filled)."""
    env = {
        **os.environ,
        "VAULTCRAFT_JWT_SECRET": "test-secret-" + "x" * 32,
        "VAULTCRAFT_METRICS_TOKEN": "test-metrics-" + "x" * 32,
    }
    result = subprocess.run(
        [*compose_cli, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def _vaultcraft_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if (service.get("command") or [None])[0] == "vaultcraft"
    }


def _expected_target(service: dict[str, Any]) -> tuple[int, str]:
    """The port and path a process serves its metrics on, from its command and environment."""
    command, env = service["command"], service["environment"]
    if command[1] == "gateway":
        return int(env["VAULTCRAFT_HTTP_PORT"]), "/metrics"
    group = (
        command[command.index("--metrics-group") + 1]
        if "--metrics-group" in command
        else command[1]
    )
    return int(env["VAULTCRAFT_METRICS_PORT"]) + GROUP_PORT_OFFSETS[group], "/metrics"


def _mount(volume: str | dict[str, str]) -> tuple[str, str]:
    """(target, source) of a volume, in the short form Compose v1 prints or v2's long form."""
    if isinstance(volume, dict):
        return volume["target"], volume["source"]
    source, target = volume.split(":")[:2]
    return target, source


def _scrape_targets() -> set[tuple[str, int, str]]:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets: set[tuple[str, int, str]] = set()
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for sd in job.get("dns_sd_configs", []):
            assert sd.get("type", "SRV") == "A", "an A lookup needs an explicit port"
            targets.update((name, int(sd["port"]), path) for name in sd["names"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port), path))
    return targets


def test_compose_runs_every_process_type(compose: dict[str, Any]) -> None:
    """Migrate, gateway, posting and webhook workers, relay and scheduler all have a service."""
    services = _vaultcraft_services(compose)
    commands = {tuple(s["command"][1:]) for s in services.values()}
    assert {("migrate",), ("gateway",), ("relay",), ("scheduler",)} <= commands
    assert ("worker", "--queues", "webhooks", "--metrics-group", "webhooks") in commands
    assert any(c[0] == "worker" and "posting" in c for c in commands)
    assert {"postgres", "redis", "prometheus", "grafana"} <= set(compose["services"])


def test_everything_waits_for_migrations(compose: dict[str, Any]) -> None:
    """No process touches the database before `vaultcraft migrate` has finished successfully."""
    for name, service in _vaultcraft_services(compose).items():
        if service["command"][1] == "migrate":
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
            assert service.get("restart", "no") == "no"
            continue
        depends = service["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert service["environment"]["VAULTCRAFT_HTTP_HOST"] == "0.0.0.0", name  # noqa: S104


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    """Each long-running VaultCraft service is probed on the port Prometheus scrapes."""
    for name in ("postgres", "redis"):
        assert compose["services"][name]["healthcheck"]["test"]
    for name, service in _vaultcraft_services(compose).items():
        if service["command"][1] not in LONG_RUNNING:
            continue
        port, _ = _expected_target(service)
        probe = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in probe, name


def test_prometheus_scrapes_every_process(compose: dict[str, Any]) -> None:
    """Every gateway, worker, relay and scheduler service is a scrape target on its port."""
    targets = _scrape_targets()
    for name, service in _vaultcraft_services(compose).items():
        if service["command"][1] not in LONG_RUNNING:
            continue
        port, path = _expected_target(service)
        assert (name, port, path) in targets, f"{name} is not scraped on :{port}{path}"


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    """Grafana mounts the provisioning folders and the provider points at the mounted JSON."""
    volumes = dict(_mount(v) for v in compose["services"]["grafana"]["volumes"])
    dashboards_dir = volumes["/var/lib/grafana/dashboards"]
    assert (Path(dashboards_dir) / "vaultcraft.json").is_file()
    provisioning = Path(volumes["/etc/grafana/provisioning"])
    provider = yaml.safe_load((provisioning / "dashboards/vaultcraft.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_image_runs_the_gateway_as_a_non_root_user() -> None:
    """The Dockerfile builds on python:3.11-slim, drops root and defaults to the gateway."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert all(
        line.split()[1].startswith("python:3.11-slim") for line in lines if line.startswith("FROM ")
    )
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert lines[[i for i, line in enumerate(lines) if line.startswith("CMD ")][-1]] == (
        'CMD ["vaultcraft", "gateway"]'
    )


def test_prometheus_loads_alert_rules_on_metrics_we_export() -> None:
    """The rule files are mounted next to the config, and every alert reads a real metric.

    Reads docker-compose.yml as written (no Compose CLI needed): its mounts are plain.
    """
    import re

    from runtime import metrics

    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {
        target: str(ROOT / source)
        for target, source in map(_mount, compose["services"]["prometheus"]["volumes"])
    }
    exported = {
        name
        for value in vars(metrics).values()
        for name in [getattr(value, "_name", None)]
        if isinstance(name, str)
    }
    alerts = {}
    for rule_file in config["rule_files"]:
        assert Path(mounts[f"/etc/prometheus/{rule_file}"]).resolve() == (
            ROOT / "deploy/prometheus" / rule_file
        )
        rules = yaml.safe_load((ROOT / "deploy/prometheus" / rule_file).read_text())
        for group in rules["groups"]:
            alerts |= {rule["alert"]: rule["expr"] for rule in group["rules"]}
    assert "VaultCraftPostingStalled" in alerts
    for alert, expr in alerts.items():
        used = {m.removesuffix("_total") for m in re.findall(r"vaultcraft_[a-z_]+", expr)}
        assert used <= exported, f"{alert} reads metrics nobody exports: {used - exported}"
