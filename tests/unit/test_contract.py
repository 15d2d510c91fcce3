"""The one model contract: schema, one loader, checksums verified at load, old layouts."""
import json
import shutil

import pytest

from greatai import contract
from greatai.amc.engine import EarlyExitEngine
from greatai.contract import ModelError
from greatai.forecast.engine import ForecastEngine
from greatai.protobeam.engine import ProtoBeamEngine

SHIPPED = {"amc": ("amc_ee", "model.json", EarlyExitEngine), "protobeam": ("protobeam", "model.json", ProtoBeamEngine),
           "forecast": ("forecast", "model.json", ForecastEngine), "msm-backbone": ("forecast", "backbone.json", None)}


@pytest.mark.parametrize("task", list(SHIPPED))
def test_shipped_models_follow_the_schema(root, task):
    d, meta_name, _ = SHIPPED[task]
    m = contract.load(root / "models" / d / meta_name, task)
    meta = json.loads(m.path.read_text())
    assert meta["schema"] == contract.SCHEMA and meta["task"] == task and meta["version"]
    for key in ("name", "description", "files", "training"):
        assert key in meta, key
    assert "greatai train" in meta["training"]["command"]
    for f in meta["files"].values():
        assert set(f) == {"path", "sha256"} and len(f["sha256"]) == 64
    if task != "msm-backbone":
        assert {"inputs", "outputs", "normalisation", "evaluation"} <= set(meta)
    for old in ("checksums", "sha256", "default_threshold", "input", "output"):
        assert old not in meta, old
    assert contract.load("", task).task == task            # the shipped default of the task


@pytest.mark.parametrize("task", ["amc", "protobeam", "forecast"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_model_file_altered_after_export_is_refused_naming_it(root, tmp_path, task, damage):
    d, _, engine = SHIPPED[task]
    m = tmp_path / "m"
    shutil.copytree(root / "models" / d, m)
    role = contract.TASKS[task][1][0]
    f = m / contract.load(m, task).meta["files"][role]["path"]
    data = bytearray(f.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[:len(data) // 3]
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{f}.*fails its SHA-256 check"):
        engine(m)
    with pytest.raises(ModelError, match="SHA-256"):
        contract.load(m, task)


def test_old_layouts_are_accepted_and_converted(root, tmp_path):
    """AMC's checksums/default_threshold and ProtoBeam's sha256/input, as earlier releases wrote them."""
    m = tmp_path / "amc"
    shutil.copytree(root / "models" / "amc_ee", m)
    meta = json.loads((m / "model.json").read_text())
    old = {k: v for k, v in meta.items() if k not in ("schema", "files", "thresholds", "version", "description")}
    old.update(task="early-exit automatic modulation classification",
               files={"stage1": "stage1.onnx", "stage2": "stage2.onnx"},
               checksums={r["path"]: r["sha256"] for r in meta["files"].values()}, default_threshold=0.31)
    (m / "model.json").write_text(json.dumps(old))
    eng = EarlyExitEngine(m)
    assert eng.threshold == 0.31 and eng.model.task == "amc" and eng.model.sha256("stage1") == \
        meta["files"]["stage1"]["sha256"]
    p = tmp_path / "pb"
    shutil.copytree(root / "models" / "protobeam", p)
    meta = json.loads((p / "model.json").read_text())
    old = {k: v for k, v in meta.items() if k not in ("schema", "files", "inputs", "outputs", "version")}
    old.update(task="transmit-beam inference from IQ (prototypical network)",
               files={"encoder": "encoder.onnx", "waveform": "waveform.cf32"},
               sha256={"encoder.onnx": meta["files"]["encoder"]["sha256"],
                       "waveform.cf32": meta["files"]["waveform"]["sha256"]}, input=meta["inputs"]["encoder"])
    (p / "model.json").write_text(json.dumps(old))
    m2 = contract.load(p, "protobeam")
    assert m2.meta["inputs"]["encoder"]["name"] == "features" and ProtoBeamEngine(p).dim == meta["embedding_dim"]
    contract.write(p / "model.json", old)                     # converted once, on write
    assert json.loads((p / "model.json").read_text())["schema"] == contract.SCHEMA


def test_contract_refusals_name_the_problem(root, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(root / "models" / "amc_ee", m)
    with pytest.raises(ModelError, match="is a 'amc' model; this needs a 'protobeam' model"):
        contract.load(m, "protobeam")
    meta = json.loads((m / "model.json").read_text())
    del meta["files"]["stage2"]["sha256"]
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="no sha256 for stage2.onnx"):
        contract.load(m, "amc")
    del meta["frame_length"]
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"{m / 'model.json'} lacks a required field: 'frame_length'"):
        contract.load(m, "amc")
    (m / "stage2.onnx").unlink()
    meta["frame_length"] = 1024
    meta["files"]["stage2"]["sha256"] = "0" * 64
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model file not found: .*stage2.onnx"):
        contract.load(m, "amc")
    with pytest.raises(ValueError, match="unknown model task"):
        contract.load(m, "segmentation")
    with pytest.raises(ModelError, match="not found"):
        contract.load(tmp_path / "nothing", "amc")


def test_the_identity_results_can_carry(root):
    m = contract.load("", "amc")
    assert m.identity() == {"model": "amc_ee", "model_version": m.version}


def test_shipped_models_load_by_name(root):
    """GRC's model field takes a shipped model's name: the compressed AMC variant, the hardware model."""
    assert contract.resolve("amc_ee_int8", "amc_ee") == root / "models" / "amc_ee_int8" / "model.json"
    m = contract.load("amc_ee_int8", "amc")
    assert m.meta["compression"]["method"] == "ptq" and m.meta["cost"]["compressed"]["score_vs_float"] < 0.5
    assert contract.load("amc_hw", "amc").name == "amc_hw"
    with pytest.raises(ModelError, match="not found"):
        contract.resolve("no_such_model", "amc_ee")
