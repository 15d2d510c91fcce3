import json

import numpy as np
import pytest

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
    assert [r["key"] for r in ev["rows"]] == ["baseline_one", "baseline_mixed", "nn_pdp", "nn_spectrum", "plain",
                                              "dnorm", "dnorm_aug", "full"]
    assert set(ev["rows"][-1]["unseen"]) == {"1", "2", "4", "8", "16", "32"}
    assert {"baseline_collapse", "protobeam_8shot_gap"} <= set(ev["goals"])
    assert (tmp_path / "res" / "pca.png").stat().st_size > 10000
    assert "| + prototype normalisation |" in evaluate.format_table(ev)
    eng = ProtoBeamEngine(tmp_path / "pb")
    assert eng.dim == meta["embedding_dim"] and eng.default.shape == (24, eng.dim)
    assert meta["training"]["command"].startswith("greatai train protobeam --seed 3")


@pytest.fixture(scope="module")
def tiny_hw_model(tmp_path_factory):
    from greatai.amc import train
    out = tmp_path_factory.mktemp("hw")
    train.train(out, "tiny-hardware", seed=6, progress=False)
    return out


def test_tiny_hardware_training_adds_the_unknown_background_class(tiny_hw_model):
    from greatai import outliers
    tmp_path = tiny_hw_model
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["classes"][-1] == "UNKNOWN" and len(meta["classes"]) == 12
    data = meta["training"]["data"]
    assert data["conditions_preset"] == "hardware" and data["conditions"]["multipath_prob"] == 0.5
    assert data["background"]["held_out"] == ["CSS"] and set(data["background"]["kinds"]) < set(outliers.KINDS)
    assert meta["training"]["command"] == "greatai train amc --config tiny-hardware --seed 6"
    eng = EarlyExitEngine(tmp_path)
    r = eng.classify(outliers.generate(np.random.default_rng(0), ["OFDM", "CSS"], 1024, snr_db=20.0))
    assert r.probs.shape == (2, 12) and set(eng.label_names(r.label)) <= set(meta["classes"])


def test_evaluations_take_a_model_with_a_background_class(tiny_hw_model):
    from greatai.amc import evaluate, openset
    tmp_path = tiny_hw_model
    res = evaluate.evaluate(tmp_path, n_per_class_per_snr=4, snrs=(10,), threads=1, progress=False)
    assert len(res["confusion_snr_ge_10"]["rows_true_cols_pred"]) == 12
    assert sum(res["confusion_snr_ge_10"]["rows_true_cols_pred"][-1]) == 0          # no UNKNOWN truth row
    o = openset.evaluate(tmp_path, n=3, snrs=(20,), threads=1)
    assert o["background_class"] and "UNKNOWN class" in o["score"]
