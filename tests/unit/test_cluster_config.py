"""cluster.yaml passes Ray's own cluster-config validation, and a broken copy of it fails with the file and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from backbone.cluster import load_cluster_config
from backbone.errors import BackboneError

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_cluster_yaml_validates_with_rays_schema() -> None:
    config = load_cluster_config(CLUSTER_YAML)
    types = config["available_node_types"]
    assert config["head_node_type"] == "head" and types["head"]["max_workers"] == 0
    assert types["cpu_worker"]["min_workers"] <= types["cpu_worker"]["max_workers"]
    assert types["gpu_worker"]["resources"]["GPU"] >= 1 and "GPU" not in types["cpu_worker"]["resources"]
    assert config["idle_timeout_minutes"] > 0
    # prepare_config merged the shared setup into each kind: torch comes first everywhere.
    for kind in ("head_setup_commands", "worker_setup_commands"):
        assert config[kind][0].index("pip install torch==2.13.0") < config[kind][0].index("pip install -e .")
    for start in ("head_start_ray_commands", "worker_start_ray_commands"):
        ray_start = next(command for command in config[start] if "ray start" in command)
        for variable in ("RAY_USAGE_STATS_ENABLED=0", "RAY_AUTH_MODE=token", "BACKBONE_REGISTRY=s3://"):
            assert variable in ray_start, f"{start} lacks {variable}"
        assert "0.0.0.0" not in ray_start, f"{start} binds something to every interface"
    head_start = next(command for command in config["head_start_ray_commands"] if "ray start" in command)
    assert "--dashboard-host=127.0.0.1" in head_start
    # Every node gets the token its Ray checks callers against.
    assert config["file_mounts"]["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["available_node_types"]["cpu_worker"].update(max_worker=3), r"cpu_worker: .*'max_worker'"),
        (lambda c: c.update(idle_timeout_minute=5), r"\(top level\): .*'idle_timeout_minute'"),
        (lambda c: c.update(idle_timeout_minutes="five"), r"idle_timeout_minutes: 'five' is not of type"),
        (lambda c: c.pop("provider"), r"missing required key 'provider'"),
    ],
    ids=["misspelled-node-field", "misspelled-top-field", "wrong-type", "missing-provider"],
)
def test_broken_cluster_yaml_fails_naming_file_and_field(
    tmp_path: Path, edit: Callable[[dict], object], message: str
) -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))
    edit(config)
    path = _write(tmp_path, config)
    with pytest.raises(BackboneError, match=message) as caught:
        load_cluster_config(path)
    assert str(caught.value).startswith(f"{path}: ")
