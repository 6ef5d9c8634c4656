"""Fixtures shared by every test: where the real data and models are, and a private BACKBONE_HOME.

Real data and models live outside the repository (``../shared``); point at them with
``BACKBONE_STARD_DIR`` and ``BACKBONE_MODELS_DIR``. Where they are missing a test that needs them is
skipped, except under CI (``CI=true``), where a missing input is a failure: CI must test the real thing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Ray's token auth is on for every Ray the tests start and every client they run, as in the README's local flow
# (cluster/head_node.py: RAY_AUTH). Set before anything imports Ray: a process reads the mode once, and a client
# that first looked for a token with auth off keeps finding none.
os.environ.setdefault("RAY_AUTH_MODE", "token")

from tiny_models import build_tiny_decoder, build_tiny_encoder

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def _required(path: Path, what: str) -> Path:
    if path.exists():
        return path
    message = f"{what} not found at {path}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (required under CI)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def stard_dir() -> Path:
    """The real STARD copy with the upstream layout."""
    return _required(Path(os.environ.get("BACKBONE_STARD_DIR", SHARED / "data" / "stard")), "STARD")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The local model directory filled by ``../shared/tools/install-models``."""
    default = Path.home() / ".cache" / "backbone" / "models"
    return _required(Path(os.environ.get("BACKBONE_MODELS_DIR", default)), "local model directory")


@pytest.fixture(autouse=True)
def private_backbone_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own BACKBONE_HOME and registry so that none touches the user's."""
    home = tmp_path_factory.mktemp("backbone-home")
    monkeypatch.setenv("BACKBONE_HOME", str(home))
    monkeypatch.delenv("BACKBONE_REGISTRY", raising=False)
    monkeypatch.delenv("BACKBONE_DATA_DIR", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer, saved with ``save_pretrained``."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Qwen3 causal LM (hidden 32) with a byte-level BPE tokenizer holding 'yes' and 'no'."""
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))
