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


def test_tiny_protobeam_training_evaluates_every_group_and_exports(tmp_path):
    from greatai.protobeam import evaluate, train
    from greatai.protobeam.engine import ProtoBeamEngine
    meta = train.train_all(tmp_path / "pb", "tiny", seed=3, progress=False, results_dir=tmp_path / "res")
    ev = meta["evaluation"]
    assert list(ev["groups"]) == [g[0] for g in evaluate.GROUPS]
    for grp in ev["groups"].values():
        assert list(grp["rows"]) == ["nn_pdp", "nn_spectrum", "protobeam", "protobeam_pool4", "protobeam_calibrated",
                                     "protobeam_calibrated_pool4"]
        assert set(grp["rows"]["protobeam"]) == {"1", "2", "4", "8", "16", "32"}
    assert {"independent_fading_over_baselines", "unseen_static_8shot"} <= set(ev["goals"])
    assert set(ev["waveforms"]["accuracy_8shot_unseen_front_ends"]) == set(train.waveforms.NAMED)
    assert (tmp_path / "res" / "pca.png").stat().st_size > 10000
    assert (tmp_path / "res" / "table.png").stat().st_size > 10000
    assert "| independent physics (heldout.py), fading |" in evaluate.format_table(ev)
    eng = ProtoBeamEngine(tmp_path / "pb")
    assert eng.dim == meta["embedding_dim"] and eng.default.shape == (24, eng.dim)
    assert meta["training"]["command"].startswith("greatai train protobeam --seed 3")


def test_tiny_protobeam_training_for_a_users_waveform(tmp_path):
    """--waveform FILE trains for that reference only; the model then refuses any other."""
    from greatai.contract import ModelError
    from greatai.protobeam import train, waveforms
    from greatai.protobeam.engine import ProtoBeamEngine
    ref = waveforms.save(tmp_path / "mine.cf32", waveforms.linear("8PSK", 40, 5, 0.3, 99))
    meta = train.train_all(tmp_path / "pb", "tiny", seed=4, progress=False, waveform=str(ref))
    assert meta["waveform"]["general"] is False and meta["waveform"]["trained_names"] == ["user"]
    assert "--waveform" in meta["training"]["command"] and "legacy_unseen" not in meta["evaluation"]["groups"]
    eng = ProtoBeamEngine(tmp_path / "pb")
    assert eng.waveform_id == waveforms.digest(waveforms.load(ref)) and eng.front.period == 200
    with pytest.raises(ModelError, match="greatai train protobeam --waveform FILE"):
        ProtoBeamEngine(tmp_path / "pb", waveform="qpsk64_sps4")


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
