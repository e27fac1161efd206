"""Fixtures shared by every test area: the built artifact, its extracted model dir, the loaded handlers."""

from __future__ import annotations

import importlib.util
import os
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "model" / "dist" / "model.tar.gz"
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pth"


def load_inference_module(code_dir: Path, name: str = "mobilenet_inference"):
    """Import an artifact's code/inference.py under a private name, as the toolkit imports the user module."""
    spec = importlib.util.spec_from_file_location(name, code_dir / "inference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def artifact() -> Path:
    """model/dist/model.tar.gz as `make model` builds it (built here if a bare `pytest` runs first)."""
    if not ARTIFACT.exists():
        from model import package

        weights = os.environ.get("MODEL_WEIGHTS") or (str(SHARED_WEIGHTS) if SHARED_WEIGHTS.exists() else None)
        assert package.main(["--weights", weights] if weights else []) == 0
    return ARTIFACT


@pytest.fixture(scope="session")
def model_dir(artifact, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("model")
    with tarfile.open(artifact) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def inference(model_dir):
    return load_inference_module(model_dir / "code")


@pytest.fixture(scope="session")
def classifier(inference, model_dir):
    return inference.model_fn(str(model_dir))
