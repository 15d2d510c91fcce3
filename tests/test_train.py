import json

import numpy as np

from greatai.amc.engine import EarlyExitEngine


def test_tiny_training_exports_a_loadable_model(tiny_model):
    meta = json.loads((tiny_model / "model.json").read_text())
    assert meta["training"]["config"]["epochs"] == 1
    assert 0.0 <= meta["default_threshold"] <= 1.0
    eng = EarlyExitEngine(tiny_model)
    r = eng.classify((np.random.default_rng(0).standard_normal((3, 1024)) * (1 + 1j)).astype(np.complex64))
    assert r.probs.shape == (3, 11) and set(r.exit.tolist()) <= {1, 2}


def test_training_is_reproducible(tiny_model, tmp_path):
    from greatai.amc import train
    train.train(tmp_path, "tiny", seed=5, progress=False)
    a = json.loads((tiny_model / "model.json").read_text())["training"]["history"]
    b = json.loads((tmp_path / "model.json").read_text())["training"]["history"]
    assert a == b
