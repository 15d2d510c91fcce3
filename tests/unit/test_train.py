import json

import numpy as np

from greatai.amc.engine import EarlyExitEngine


def test_tiny_training_exports_a_loadable_model(tiny_model):
    meta = json.loads((tiny_model / "model.json").read_text())
    assert meta["training"]["config"]["epochs"] == 1
    assert 0.0 <= meta["thresholds"]["exit"] <= 1.0
    eng = EarlyExitEngine(tiny_model)
    r = eng.classify((np.random.default_rng(0).standard_normal((3, 1024)) * (1 + 1j)).astype(np.complex64))
    assert r.probs.shape == (3, 11) and set(r.exit.tolist()) <= {1, 2}
    # stage 1 exports each frame's mean power, from which the engine checks frames
    assert meta["outputs"]["stage1"]["names"] == ["probs", "features", "power"]
    assert [o.name for o in eng.s1.get_outputs()] == ["probs", "features", "power"]


def test_training_is_reproducible(tiny_model, tmp_path):
    from greatai.amc import train
    train.train(tmp_path, "tiny", seed=5, progress=False)
    a = json.loads((tiny_model / "model.json").read_text())["training"]["history"]
    b = json.loads((tmp_path / "model.json").read_text())["training"]["history"]
    assert a == b


def test_tiny_protobeam_training_runs_every_row_and_exports(tmp_path):
    from greatai.protobeam import evaluate, train
    from greatai.protobeam.engine import ProtoBeamEngine
    meta = train.train_all(tmp_path / "pb", "tiny", seed=3, progress=False, results_dir=tmp_path / "res")
    ev = meta["evaluation"]
    assert [r["key"] for r in ev["rows"]] == ["baseline_one", "baseline_mixed", "plain", "dnorm", "dnorm_aug", "full"]
    assert set(ev["rows"][-1]["unseen"]) == {"1", "2", "4", "8", "16", "32"}
    assert {"baseline_collapse", "protobeam_8shot_gap"} <= set(ev["goals"])
    assert (tmp_path / "res" / "pca.png").stat().st_size > 10000
    assert "| + prototype normalisation |" in evaluate.format_table(ev)
    eng = ProtoBeamEngine(tmp_path / "pb")
    assert eng.dim == meta["embedding_dim"] and eng.default.shape == (24, eng.dim)
    assert meta["training"]["command"].startswith("greatai train protobeam --seed 3")
