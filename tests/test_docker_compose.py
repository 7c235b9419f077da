"""docker-compose.yml: valid against the Compose specification, no default secrets, real commands.

No Docker engine runs here, so the file is checked the way `docker compose config` would:
interpolated, validated against the specification's JSON schema, and every tracetune command
it runs is parsed by the real CLI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml

from tracetune.sync.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / ".venv" / "share" / "compose-spec.json"
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::([?-])([^}]*))?\}")


class MissingVariableError(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` substitution."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        if operator == "?":
            raise MissingVariableError(f"{name}: {argument}")
        return argument if operator == "-" else ""

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _filled_env() -> dict[str, str]:
    example = (ROOT / "deploy" / "tracetune.env.example").read_text()
    names = re.findall(r"^([A-Z_]+)=", example, re.M)
    return {name: f"test-{name.lower()}" for name in names}


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    config = interpolate(_compose(), _filled_env())
    jsonschema.validate(config, schema)
    assert {"db", "label-studio", "redis", "mlflow", "backend", "worker", "scheduled-sync"} <= set(
        config["services"]
    )


def test_it_refuses_to_start_without_each_secret() -> None:
    env = _filled_env()
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "LABEL_STUDIO_PASSWORD"):
        partial = {k: v for k, v in env.items() if k != secret}
        with pytest.raises(MissingVariableError, match=secret):
            interpolate(_compose(), partial)


def test_the_env_template_ships_no_values() -> None:
    example = (ROOT / "deploy" / "tracetune.env.example").read_text()
    assert re.findall(r"^[A-Z_]+=(.+)$", example, re.M) == []


def test_services_have_health_checks_volumes_and_scaled_workers() -> None:
    services = interpolate(_compose(), _filled_env())["services"]
    for name in ("db", "label-studio", "redis", "mlflow", "backend"):
        assert "healthcheck" in services[name], name
    assert int(services["worker"]["deploy"]["replicas"]) >= 1
    assert "--appendonly yes" in " ".join(services["redis"]["command"])


def test_no_secret_is_on_a_command_line_and_label_studio_sends_nothing_outside() -> None:
    env = _filled_env()
    services = interpolate(_compose(), env)["services"]
    secrets = [v for k, v in env.items() if "PASS" in k or "TOKEN" in k or k.endswith("_KEY")]
    for name, service in services.items():
        command = " ".join(service.get("command") or [])
        assert not [s for s in secrets if s in command], name
    # the redis password reaches redis-server through a file the shell writes
    assert "$REDIS_PASSWORD" in " ".join(services["redis"]["command"])
    label_studio = services["label-studio"]["environment"]
    assert label_studio["LABEL_STUDIO_SENTRY_DSN"] == ""
    assert label_studio["LABEL_STUDIO_FRONTEND_SENTRY_DSN"] == ""
    assert label_studio["LABEL_STUDIO_COLLECT_ANALYTICS"] == "false"


@pytest.mark.parametrize("service", ["backend", "worker", "scheduled-sync"])
def test_every_tracetune_command_it_runs_exists_with_those_options(service: str) -> None:
    args = interpolate(_compose(), _filled_env())["services"][service]["command"]
    command: Any = typer.main.get_command(app)
    with command.make_context("tracetune", list(args), resilient_parsing=False) as ctx:
        sub_name, sub_command, sub_args = command.resolve_command(ctx, list(args))
        assert sub_command is not None, f"tracetune {sub_name} does not exist"
        sub_command.make_context(sub_name or "", sub_args, parent=ctx)


def test_label_studio_can_reach_the_backend_but_keeps_ssrf_protection() -> None:
    from tracetune.sync.stack.servers import ssrf_settings

    environment = _compose()["services"]["label-studio"]["environment"]
    expected = ssrf_settings("172.16.0.0/12")
    assert environment["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    assert (
        environment["USER_ADDITIONAL_BANNED_SUBNETS"] == expected["USER_ADDITIONAL_BANNED_SUBNETS"]
    )
    assert "SSRF_PROTECTION_ENABLED" not in environment


def test_tracetune_services_use_the_mlflow_registry_it_runs() -> None:
    services = interpolate(_compose(), _filled_env())["services"]
    mlflow = services["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:////mlflow/")
    assert any(v.endswith(":/mlflow") for v in mlflow["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in mlflow["ports"])  # the UI stays on loopback
    for name in ("backend", "worker", "scheduled-sync"):
        assert services[name]["environment"]["TRACETUNE_REGISTRY_URI"] == f"http://mlflow:{port}"
        assert services[name]["depends_on"]["mlflow"]["condition"] == "service_healthy"
