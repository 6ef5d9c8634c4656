"""The Ray cluster-launcher config (``cluster.yaml``), read and checked the way ``ray up`` checks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from backbone.errors import BackboneError


def load_cluster_config(path: Path) -> dict[str, Any]:
    """Read a cluster-launcher YAML, fill in Ray's defaults and validate it against Ray's own schema.

    ``ray up`` runs the same two steps (``prepare_config``, then ``validate_config`` once the provider filled in what
    it can), so a config that passes here has no unknown key, no misspelled field and no wrong type; what only the
    cloud can check (instance types, the bucket, the IAM profile) is left to ``ray up``.

    Args:
        path: the YAML file, e.g. the repository's ``cluster.yaml``.

    Returns:
        The prepared config: defaults merged, setup commands merged per node kind, ``min/max_workers`` on every type.

    Raises:
        BackboneError: the file is not a YAML mapping, or Ray's schema rejects it; the message names the file and
            the field.

    Example:
        >>> config = load_cluster_config(Path("cluster.yaml"))  # doctest: +SKIP
        >>> sorted(config["available_node_types"])  # doctest: +SKIP
        ['cpu_worker', 'gpu_worker', 'head']
    """
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise BackboneError(f"{path}: a cluster config must be a YAML mapping")
    try:
        prepared = prepare_config(raw)
        validate_config(prepared)
    except jsonschema.ValidationError as err:
        field = ".".join(str(part) for part in err.absolute_path) or "(top level)"
        raise BackboneError(f"{path}: {field}: {err.message}") from None
    except KeyError as err:  # prepare_config indexes required sections before the schema sees them
        raise BackboneError(f"{path}: missing required key {err}") from None
    return prepared
