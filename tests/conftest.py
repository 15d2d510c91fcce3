import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))      # helpers.py for every tier



@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def shipped_model():
    p = ROOT / "models" / "amc_ee" / "model.json"
    assert p.is_file(), "the shipped AMC model is missing: run `greatai train amc`"
    return p.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A model trained with the tiny config (seconds): proves training + export work."""
    from greatai.amc import train
    out = tmp_path_factory.mktemp("tiny_amc")
    train.train(out, "tiny", seed=5, progress=False)
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
