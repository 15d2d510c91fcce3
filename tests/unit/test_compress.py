"""greatai.compress: cost accounting on a hand-computed network, PTQ of the AMC model, bad input."""
import json

import numpy as np
import pytest

from greatai import compress, contract, fileio
from greatai.compress import cost, ptq
from greatai.compress.ptq import CompressError


def conv_fc(channels):
    """Conv1d(2 -> ``channels``, k 3, pad 1) on 8 samples, ReLU, then Linear(8 x channels -> 4)."""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, channels, 3, padding=1)
            self.fc = nn.Linear(8 * channels, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))
    return Net()


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    """Conv1d(2 -> 3, k 3, pad 1) on 8 samples, then Linear(24 -> 4); three conv weights zeroed."""
    import torch
    torch.manual_seed(0)
    net = conv_fc(3).eval()
    with torch.no_grad():
        net.conv.weight[0, 0, :] = 0                       # 3 of the 18 conv weights
    p = tmp_path_factory.mktemp("tiny_net") / "net.onnx"
    torch.onnx.export(net, (torch.randn(1, 2, 8),), str(p), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    return p


def test_cost_of_a_hand_computed_network(tiny_net):
    rows = {r["op"]: r for r in cost.layers(tiny_net)}
    conv, fc = rows["Conv"], rows["Gemm"]
    # conv: 3 out channels x 8 positions x (2 in x 3 taps) = 144 dense MACs; 15 non-zero weights x 8 = 120
    assert (conv["dense_macs"], conv["macs"]) == (144, 120)
    assert (conv["params"], conv["nonzero_params"]) == (18 + 3, 15 + 3)
    assert (fc["dense_macs"], fc["macs"], fc["params"]) == (96, 96, 96 + 4)
    assert conv["bops"] == 120 * 32 * 32 and conv["weight_mem_bits"] == 15 * 32 + 3 * 32
    total = cost.account(tiny_net)
    assert total["dense_macs"] == 240 and total["macs"] == 216 and total["params"] == 121
    assert total["file_bytes"] == tiny_net.stat().st_size
    assert cost.score(total, total) == 1.0
    # stated bit widths (a fake-quantised export): bops scale with both widths
    assert cost.account(tiny_net, weight_bits=4, act_bits=8)["bops"] == 216 * 4 * 8
    # a batch of 5 costs five times as much
    assert cost.account(tiny_net, dims={"batch": 5})["macs"] == 5 * 216


def test_ptq_of_the_tiny_network_is_int8(tiny_net, tmp_path):
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((16, 2, 8)).astype(np.float32)} for _ in range(2)]
    scheme = ptq.scheme_for({"vnni": True})
    names = ptq.quantize(tiny_net, tmp_path / "q.onnx", feeds, scheme)
    assert len(names) == 2
    rows = cost.layers(tmp_path / "q.onnx")
    assert all(r["weight_bits"] == 8 and r["act_bits"] == 8 for r in rows)
    c = cost.account(tmp_path / "q.onnx")
    assert c["bops"] <= 240 * 64 and c["weight_mem_bits"] < cost.account(tiny_net)["weight_mem_bits"]
    # one layer kept float: its row says 32 bits
    ptq.quantize(tiny_net, tmp_path / "q2.onnx", feeds, scheme, exclude=[names[0]])
    assert sorted(r["weight_bits"] for r in cost.layers(tmp_path / "q2.onnx")) == [8, 32]
    # every layer kept float: a copy, not "quantise everything"
    assert ptq.quantize(tiny_net, tmp_path / "q3.onnx", feeds, scheme, exclude=names) == []
    assert fileio.sha256(tmp_path / "q3.onnx") == fileio.sha256(tiny_net)


def test_scheme_follows_the_cpu():
    assert ptq.scheme_for({"vnni": True})["activations"] == "int8"
    s = ptq.scheme_for({"vnni": False})
    assert s["activations"] == "uint8" and s["reduce_range"]
    isa = ptq.cpu_isa()
    assert isa["cpu"] and isinstance(isa["vnni"], bool)


def test_bad_input_is_named(tiny_net, tmp_path):
    scheme = ptq.scheme_for({"vnni": True})
    with pytest.raises(CompressError, match=r"input 'x'.*\[16, 3, 8\]"):
        ptq.quantize(tiny_net, tmp_path / "q.onnx", [{"x": np.zeros((16, 3, 8), np.float32)}], scheme)
    with pytest.raises(CompressError, match="inputs"):
        ptq.quantize(tiny_net, tmp_path / "q.onnx", [{"iq": np.zeros((16, 2, 8), np.float32)}], scheme)
    with pytest.raises(CompressError, match="no calibration data"):
        ptq.quantize(tiny_net, tmp_path / "q.onnx", [], scheme)
    # an operator the quantiser cannot handle: named
    import onnx
    m = onnx.load(str(tiny_net))
    m.graph.node[0].domain = "org.example"
    m.graph.node[0].name = "my_custom_node"
    with pytest.raises(CompressError, match="my_custom_node"):
        ptq.check_graph(m)
    with pytest.raises(CompressError, match="unknown compression method 'zip'"):
        compress.compress("amc_ee", tmp_path / "x", method="zip")
    with pytest.raises(CompressError, match="BacalhauNet is an AMC architecture"):
        compress.compress("amc_ee", tmp_path / "x", method="bacalhaunet")
    with pytest.raises(CompressError, match="qat bits must be one of 2, 3, 4, 5, 6, 7, 8, got 9"):
        compress.compress("amc_ee", tmp_path / "x", method="qat", qat_bits=9)
    with pytest.raises(CompressError, match="act bits must be one of"):
        compress.compress("amc_ee", tmp_path / "x", method="imp", qat_bits=4, act_bits=1)
    with pytest.raises(CompressError, match="PTQ .* or QAT"):
        compress.compress("amc_ee", tmp_path / "x", method="imp", qat_bits=4, quantise_after=True)
    with pytest.raises(CompressError, match="'segment' model; ptq is built for amc, protobeam, forecast"):
        compress.compress(contract.resolve("", "segment"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_staged_directory_never_looks_finished(tmp_path):
    out = tmp_path / "variant"
    with pytest.raises(RuntimeError):
        with compress.staged_dir(out) as tmp:
            (tmp / "model.json").write_text("{}")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []                       # neither the output nor the staging dir
    with compress.staged_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1" and oct(out.stat().st_mode & 0o777) == "0o755"
    with pytest.raises(CompressError, match="exists"):
        with compress.staged_dir(out):
            pass
    with compress.staged_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"] and len(list(tmp_path.iterdir())) == 1


@pytest.fixture(scope="module")
def amc_int8(shipped_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "amc_int8"
    before = {p.name: fileio.sha256(p) for p in shipped_model.iterdir()}
    meta = compress.compress(shipped_model, out, n_calib=8, n_val=40, eval_n=0, progress=False)
    assert {p.name: fileio.sha256(p) for p in shipped_model.iterdir()} == before    # the source is only read
    return out, meta


def test_amc_ptq_writes_a_model_under_the_contract(amc_int8, shipped_model):
    out, meta = amc_int8
    m = contract.load(out, "amc")                              # checksums verified
    assert m.classes == contract.load(shipped_model, "amc").classes
    c = meta["compression"]
    assert c["method"] == "ptq" and c["scheme"]["format"] == "QDQ" and "cpu" in c["machine"]
    assert (out / c["source"]["dir"]).resolve() == shipped_model.resolve()
    # the feature extraction stays float: the graph input feeds no QuantizeLinear directly
    import onnx
    g = onnx.load(str(out / "stage1.onnx")).graph
    assert not [n for n in g.node if n.op_type == "QuantizeLinear" and "iq" in n.input]
    q = meta["cost"]["compressed"]
    assert q["bops"] < meta["cost"]["float"]["bops"] / 4 and 0 < q["score_vs_float"] < 0.5
    assert 8 in q["parts"]["stage2"]["weight_bits"]
    assert 0 <= meta["thresholds"]["exit"] <= 1
    assert json.loads((out / "model.json").read_text())["name"].endswith("_int8")


def test_int8_amc_classifies_like_float(amc_int8, shipped_model):
    from greatai import sim
    from greatai.amc.engine import EarlyExitEngine
    out, _ = amc_int8
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(len(sim.CLASSES)), 20)
    x, _ = sim.generate(rng, labels, 1024, snr_db=20.0)
    f = EarlyExitEngine(shipped_model).classify(x, mode="exit2")
    q = EarlyExitEngine(out).classify(x, mode="exit2")
    assert np.mean(f.label == q.label) >= 0.95                 # stated agreement: 95 % of frames at 20 dB
    e = EarlyExitEngine(out).classify(x)
    assert set(np.unique(e.exit)) <= {1, 2} and (e.exit == 1).any()


def _mlp():
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))


def test_global_magnitude_masks_are_exact_and_global():
    from greatai.compress import prune
    net = _mlp()
    masks = prune.global_masks(net, 0.3)
    prune.apply(net, masks)
    assert prune.sparsity(net) == pytest.approx(0.3, abs=1 / 300)
    w = np.concatenate([p.detach().numpy().ravel() for p in prune.prunable(net).values()])
    w0 = np.concatenate([p.detach().numpy().ravel() for p in prune.prunable(_mlp()).values()])
    kept = np.abs(w[w != 0]).min()                               # survivors: the largest magnitudes, all layers
    assert np.sum(np.abs(w0) >= kept) == np.count_nonzero(w)
    # a second call on top of the first keeps what it removed removed
    m2 = prune.global_masks(net, 0.5, masks)
    assert all(bool(((masks[k] == 0) <= (m2[k] == 0)).all()) for k in masks)
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="sparsity"):
            prune.global_masks(net, bad)


def test_imp_stops_at_the_floor_and_fmp_halves_its_rate():
    from greatai.compress import prune
    # accuracy falls with sparsity: 100 - 20 * sparsity; floor 90 -> at most 50 % sparse
    def acc(m):
        return 100 - 20 * prune.sparsity(m)
    net = _mlp()
    h = prune.imp(net, lambda m, k: None, acc, floor=90.0, rate=0.2)
    assert [r["accepted"] for r in h[1:]] == [True, True, True, False]        # 20 %, 36 %, 48.8 %, then 59 %
    assert prune.sparsity(net) == pytest.approx(0.488, abs=0.01)              # the failed round undone
    net = _mlp()
    h = prune.fmp(net, lambda m, k: None, acc, floor=90.0, rate=0.2)
    rates = [r["rate"] for r in h[1:]]
    assert rates[0] == 0.2 and min(rates) < 0.1 and all(b in (a, a / 2) for a, b in zip(rates, rates[1:]))
    assert 0.48 <= prune.sparsity(net) <= 0.5                # never past the floor, at least IMP's rounds
    assert all(r["rate"] >= 0.05 for r in h) and [r["accepted"] for r in h[-2:]] == [False, False]


def test_amc_as_torch_matches_its_onnx(shipped_model):
    import torch
    from greatai.compress import amc
    src = contract.load(shipped_model, "amc")
    m = amc.to_torch(src)
    x, _, _ = amc._frames(src.meta, 7, 3)
    p1, f = amc._run(amc._session(src.file("stage1")), "iq", x)[:2]
    p2 = amc._run(amc._session(src.file("stage2")), "features", f)[0]
    with torch.no_grad():
        z1, z2 = m(torch.from_numpy(x))
    np.testing.assert_allclose(torch.softmax(z1, 1).numpy(), p1, atol=2e-3)
    np.testing.assert_allclose(torch.softmax(z2, 1).numpy(), p2, atol=2e-3)


def test_magnitude_pruning_makes_a_really_sparse_model(shipped_model, tmp_path):
    from greatai.amc.engine import EarlyExitEngine
    out = tmp_path / "pruned"
    meta = compress.compress(shipped_model, out, method="magnitude", sparsity=0.6, n_train=4, n_val=10, eval_n=0,
                             progress=False)
    c = meta["cost"]["compressed"]
    assert meta["compression"]["pruning"]["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert c["macs"] < 0.6 * c["dense_macs"] and c["nonzero_params"] < 0.45 * c["params"]
    assert EarlyExitEngine(out).classify(np.ones((2, 1024), np.complex64)).label.shape == (2,)
    with pytest.raises(CompressError, match=r"sparsity must be in \(0, 1\)"):
        compress.compress(shipped_model, tmp_path / "x", method="magnitude", sparsity=1.2)


def test_qat_fake_quantisation_and_its_onnx_graph_agree(tmp_path):
    """A conv -> ReLU -> linear network at 4-bit weights and 4-bit inputs: the QDQ graph
    computes what torch's fake quantisation computed, on the 4-bit grids, zeros kept."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper
    from greatai.compress import qat
    torch.manual_seed(1)
    net = conv_fc(6)
    with torch.no_grad():
        net.conv.weight[1, 0, :] = 0
    x = torch.randn(64, 2, 8)
    qat.wrap(net, 4, 4)
    assert len(qat.qlayers(net)) == 2
    net.train()
    net(x)                                             # the input ranges seen in training
    net.eval()
    with torch.no_grad():
        want = net(x).numpy()
    recs = qat.unwrap(net)
    assert not qat.qlayers(net) and recs["conv"]["act"]["signed"] and not recs["fc"]["act"]["signed"]
    p = tmp_path / "net.onnx"
    torch.onnx.export(net, (x[:1],), str(p), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    qat.to_qdq(p, [recs["conv"], recs["fc"]])
    s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(s.run(None, {"x": x.numpy()})[0], want, atol=1e-4)
    g = onnx.load(str(p)).graph
    ints = {i.name: numpy_helper.to_array(i) for i in g.initializer if i.name.endswith("w_q")}
    assert len(ints) == 2 and all(v.dtype == np.int8 and np.abs(v).max() <= 7 for v in ints.values())
    assert not ints["qat0_w_q"][1, 0].any()                      # the zeroed weights stay zero
    assert sum(n.op_type == "Clip" for n in g.node) == 2          # 4-bit inputs: int8 alone would not clip
    c = cost.account(p, weight_bits=4, act_bits=4)
    assert c["bops"] == c["macs"] * 16
    with pytest.raises(ValueError, match="0 float weight layers in the graph, 1 quantised"):
        qat.to_qdq(p, [recs["conv"]])                           # already rewritten
    with pytest.raises(ValueError, match="weight width must be one of"):
        qat.wrap(conv_fc(6), 9)


def test_qat_of_a_pruned_amc_model_is_sparse_and_on_its_grid(shipped_model, tmp_path):
    """Magnitude pruning then QAT at 5 bits (tiny config): the sparsity survives, the cost
    accounting uses the stated widths, and the blocks' engine loads and runs it."""
    import onnx
    from onnx import numpy_helper
    from greatai.amc.engine import EarlyExitEngine
    out = tmp_path / "pq"
    meta = compress.compress(shipped_model, out, method="magnitude", sparsity=0.6, n_train=4, n_val=10, eval_n=0,
                             progress=False, qat_bits=5, act_bits=8, qat_epochs=1)
    c = meta["compression"]
    assert c["method"] == "magnitude+qat-w5a8" and c["qat"]["weight_bits"] == 5
    assert json.loads((out / "model.json").read_text())["name"].endswith("_magnitude_qat-w5a8")
    q = [numpy_helper.to_array(i) for r in ("stage1", "stage2") for i in onnx.load(str(out / f"{r}.onnx")).graph.initializer
         if i.name.endswith("w_q")]
    assert len(q) == 8 and max(int(np.abs(v).max()) for v in q) <= 15
    assert sum(int((v == 0).sum()) for v in q) / sum(v.size for v in q) >= 0.59
    k = meta["cost"]["compressed"]
    assert k["bops"] == k["macs"] * 5 * 8 and k["parts"]["stage1"]["weight_bits"] == [5]
    assert EarlyExitEngine(out).classify(np.ones((2, 1024), np.complex64)).label.shape == (2,)


def test_structured_pruning_really_narrows_the_graphs(shipped_model, tmp_path):
    import torch
    from greatai.amc.engine import EarlyExitEngine
    from greatai.compress import amc
    src = contract.load(shipped_model, "amc")
    m = amc.to_torch(src)
    x = torch.from_numpy(amc._frames(src.meta, 7, 2)[0])
    same, widths = amc.narrow(m, 0.999, amc.WIDTHS)              # every channel kept: the same network
    assert widths == {k: src.meta["architecture"][k] for k in ("c0", "c1", "c2", "c3")}
    with torch.no_grad():
        for a, b in zip(m(x), same(x)):
            assert torch.equal(a, b)
    out = tmp_path / "narrow"
    meta = compress.compress(shipped_model, out, method="structured", sparsity=0.5, n_train=4, n_val=10, eval_n=0,
                             progress=False, widths=("c0", "c2", "c3"))
    arch, a0 = meta["architecture"], src.meta["architecture"]
    assert (arch["c0"], arch["c2"], arch["c3"]) == (a0["c0"] // 2, a0["c2"] // 2, a0["c3"] // 2)
    c, f = meta["cost"]["compressed"], meta["cost"]["float"]
    assert c["dense_macs"] < 0.4 * f["dense_macs"] and c["macs"] == c["dense_macs"]     # dense, and smaller
    assert 0.6 < meta["compression"]["pruning"]["sparsity"] < 0.8
    _, w3 = amc.narrow(m, 0.5)                                   # by default branch 2 only
    assert (w3["c0"], w3["c2"], w3["c3"]) == (a0["c0"], a0["c2"], a0["c3"] // 2)
    with pytest.raises(CompressError, match="widths c0, c2, c3"):
        amc.narrow(m, 0.5, ("c9",))
    assert amc.to_torch(contract.load(out, "amc")).config["c3"] == a0["c3"] // 2          # reloadable
    e = EarlyExitEngine(out).classify(np.ones((2, 1024), np.complex64))
    assert e.label.shape == (2,)
    # the three in turn (the sweep's structured_50_imp_qat_w5a8): the narrower model pruned, then QAT
    both = compress.compress(out, tmp_path / "both", method="magnitude", sparsity=0.5, n_train=4, n_val=10,
                             eval_n=0, progress=False, qat_bits=5, qat_epochs=1)
    assert both["architecture"]["c3"] == a0["c3"] // 2 and both["compression"]["source"]["name"] == meta["name"]
    assert both["cost"]["compressed"]["nonzero_params"] < 0.55 * c["nonzero_params"]
    assert EarlyExitEngine(tmp_path / "both").classify(np.ones((2, 1024), np.complex64)).label.shape == (2,)
    with pytest.raises(CompressError, match=r"sparsity must be in \(0, 1\)"):
        compress.compress(shipped_model, tmp_path / "x", method="structured", sparsity=1.0)


def test_protobeam_ptq_writes_an_int8_encoder_the_engine_loads(tmp_path):
    from greatai.protobeam import sim
    from greatai.protobeam.engine import ProtoBeamEngine
    src = contract.resolve("protobeam", "protobeam").parent
    before = {p.name: fileio.sha256(p) for p in src.iterdir()}
    out = tmp_path / "pb_int8"
    meta = compress.compress("protobeam", out, n_calib=1, n_val=4, eval_n=0, progress=False)
    assert {p.name: fileio.sha256(p) for p in src.iterdir()} == before          # the source is only read
    c = meta["compression"]
    assert c["method"] == "ptq" and "8-shot" in c["metric"] and c["layers"]["encoder"]["quantised"]
    assert meta["cost"]["compressed"]["score_vs_float"] < 0.3
    assert (out / "waveform.cf32").read_bytes() == (src / "waveform.cf32").read_bytes()
    f, q = ProtoBeamEngine(src), ProtoBeamEngine(out)
    x = sim.generate(np.random.default_rng(2), sim.front_end(0), np.arange(48) % sim.N_BEAMS)[0]
    zf, zq = f.embed(x)[0], q.embed(x)[0]
    cos = (zf * zq).sum(1) / np.linalg.norm(zf, axis=1) / np.linalg.norm(zq, axis=1)
    assert cos.min() > 0.98                                    # stated agreement: embeddings within 0.98 cosine
    assert np.mean(f.classify(x).beam == q.classify(x).beam) >= 0.9
    with pytest.raises(CompressError, match="protobeam.*imp is built for amc"):
        compress.compress("protobeam", tmp_path / "x", method="imp")


def test_forecaster_ptq_quantises_all_three_graphs_alike(tmp_path):
    """The whole graph, the backbone and the head are all int8 (the blocks run the same
    network shared or not), the weights the unrolled ConvLSTM reuses count once, and the
    engine's forecasts stay within a stated agreement of float, whole and split."""
    import onnx
    from greatai.forecast import traffic
    from greatai.forecast.engine import ForecastEngine
    src = contract.resolve("forecast", "forecast").parent
    before = {p.name: fileio.sha256(p) for p in src.iterdir() if p.is_file()}
    out = tmp_path / "fc_int8"
    meta = compress.compress("forecast", out, n_calib=2, n_val=2, eval_n=0, progress=False)
    assert {p.name: fileio.sha256(p) for p in src.iterdir() if p.is_file()} == before
    assert meta["compression"]["layers"]["forecaster"]["loss_points"] <= 0.5
    for role in ("forecaster", "backbone", "head"):
        ops = {n.op_type for n in onnx.load(str(out / f"{role}.onnx")).graph.node}
        assert "DequantizeLinear" in ops, role
    c, f = meta["cost"]["compressed"], meta["cost"]["float"]
    assert c["params"] < 1.05 * f["params"] and c["weight_mem_bits"] < 0.35 * f["weight_mem_bits"]
    spec = traffic.dataset(9, 1, 64)[0][0]                             # [frames, channels] dB
    win = np.stack([spec[i:i + meta["steps"]] for i in range(4)])
    pf = ForecastEngine(src).forecast(win)[0]
    for share in ("", "fc-int8-test"):
        pq, ok = ForecastEngine(out, share=share).forecast(win)
        assert ok.all() and np.abs(pq - pf).mean() < 0.02                # stated agreement: mean |dp| < 0.02
    with pytest.raises(CompressError, match="forecast.*imp is built for amc"):
        compress.compress("forecast", tmp_path / "x", method="imp")


def test_forecaster_structured_pruning_really_narrows_all_three_graphs(tmp_path):
    """The ConvLSTM rebuilt from the graph's weights is the graph; narrowing keeps every unit
    at keep = 1 (the same outputs) and half of them at 0.5; a tiny fine-tuning run writes
    three narrower graphs that the engine runs whole and split, and a budget it cannot meet
    is refused with the loss named (nothing left behind)."""
    import onnx
    import torch
    from greatai.compress import forecast as cf
    from greatai.forecast import traffic
    from greatai.forecast.engine import ForecastEngine
    src = contract.load("forecast", "forecast")
    m = cf.to_torch(src)
    x = torch.randn(3, src.meta["steps"], src.meta["channels"]) * 0.5
    from greatai.runtime import make_session
    ref = make_session(src.file("forecaster"), "cpu", 1).run(None, {"spectrogram": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), ref, atol=1e-5)
        same, kept = cf.narrow(m, 1.0)
        assert kept == [list(range(16))] * 2 and torch.equal(same(x), m(x))
        half, kept = cf.narrow(m, 0.5)
    assert half.backbone.hidden == 8 and all(len(k) == 8 for k in kept)
    assert half.head.conv.weight.shape[2] == 9                         # 8 hidden units + the input (skip)
    assert half.head.adapter.hidden == 8 and list(half.head.adapter.conv.weight.shape) == [32, 17, 5]
    assert half.head.proj.weight.shape[1] == 8 and same.head.adapter.hidden == 16
    out = tmp_path / "fc_structured"
    meta = compress.compress("forecast", out, method="structured", sparsity=0.5, epochs=1, n_train=2, n_val=2,
                             eval_n=0, max_loss=100.0, progress=False)
    assert meta["hidden"] == 8 and meta["compression"]["pruning"]["hidden"] == [16, 8]
    assert meta["compression"]["pruning"]["adapter_hidden"] == [16, 8]
    assert meta["cost"]["compressed"]["macs"] < 0.4 * meta["cost"]["float"]["macs"]
    w = {i.name: i.dims for i in onnx.load(str(out / "backbone.onnx")).graph.initializer}
    assert list(w["cells.0.conv.weight"]) == [32, 9, 5]
    spec = traffic.dataset(9, 1, 64)[0][0]
    win = np.stack([spec[i:i + meta["steps"]] for i in range(4)])
    whole, ok = ForecastEngine(out).forecast(win)
    split, ok2 = ForecastEngine(out, share="fc-structured-test").forecast(win)
    assert ok.all() and ok2.all() and np.abs(whole - split).max() < 1e-4
    with pytest.raises(CompressError, match=r"loses .* points of mean F1 .* over the budget of -1"):
        compress.compress("forecast", tmp_path / "refused", method="structured", sparsity=0.5, epochs=1, n_train=2,
                          n_val=2, eval_n=0, max_loss=-1.0, progress=False)
    assert not (tmp_path / "refused").exists()


def test_shipped_structured_forecaster_loads_and_forecasts_like_float():
    """models/forecast_structured (the ConvLSTM at half width) loads by name with its checksums,
    and its decisions at its threshold agree with float's at float's on 90 % of the cells."""
    from greatai.forecast import traffic
    from greatai.forecast.engine import ForecastEngine
    m, f = contract.load("forecast_structured", "forecast"), contract.load("forecast", "forecast")
    assert m.meta["hidden"] == f.meta["hidden"] // 2 and m.meta["compression"]["method"] == "structured"
    spec = traffic.dataset(11, 1, 112)[0][0]
    win = np.stack([spec[i:i + m.meta["steps"]] for i in range(0, 64, 4)])
    pc, ok = ForecastEngine(m.path).forecast(win)
    pf, _ = ForecastEngine(f.path).forecast(win)
    assert ok.all() and pc.shape == pf.shape
    agree = np.mean((pc >= m.threshold("occupied", 0.5)) == (pf >= f.threshold("occupied", 0.5)))
    assert agree >= 0.9                                          # stated agreement: 90 % of the cells


def test_shipped_structured_variant_loads_and_classifies_like_float(shipped_model):
    from greatai import sim
    from greatai.amc.engine import EarlyExitEngine
    m = contract.load("amc_ee_structured_int8", "amc")                  # by name, checksums verified
    assert m.meta["architecture"]["c3"] == contract.load(shipped_model, "amc").meta["architecture"]["c3"] // 2
    assert m.meta["compression"]["method"] == "structured+ptq"
    rng = np.random.default_rng(4)
    x, _ = sim.generate(rng, np.repeat(np.arange(len(sim.CLASSES)), 20), 1024, snr_db=20.0)
    f, q = EarlyExitEngine(shipped_model).classify(x), EarlyExitEngine(m.path).classify(x)
    assert np.mean(f.label == q.label) >= 0.9                   # stated agreement: 90 % of frames at 20 dB


def test_noise_injection_as_over_the_air(shipped_model, tmp_path):
    """Training for the air: AWGN noise at the WNR (per tensor), or a fading link's noise after
    the MMSE receiver (most weights near themselves, the ones in fades pulled to the mean);
    the fine-tuning runs and says which, and fading without a WNR is refused."""
    import torch
    from greatai.compress.amc import air_noise
    torch.manual_seed(0)
    q = torch.randn(200000) * 2 + 1
    awgn = air_noise(q, 0.1)                                                   # 20 dB
    assert float((awgn - q).std()) == pytest.approx(0.2, rel=0.02)
    fad = air_noise(q, 0.1, fading=True)
    shrink = (fad - 1) / (q - 1)                                               # 1 where clear, toward 0 in a fade
    assert float(shrink.median()) == pytest.approx(1.0, abs=0.02) and float((shrink.abs() < 0.5).float().mean()) > 0.003
    assert float(fad.mean()) == pytest.approx(1.0, abs=0.02)
    meta = compress.compress(shipped_model, tmp_path / "nf", method="noise", noise_wnr_db=25.0, noise_fading=True,
                             n_train=4, n_val=10, eval_n=0, progress=False)
    assert "Rayleigh" in meta["compression"]["noise_injection"]["channel"]
    assert "--noise-fading" in meta["compression"]["command"]
    with pytest.raises(CompressError, match="noise_fading needs noise_wnr_db"):
        compress.compress(shipped_model, tmp_path / "x", method="noise", noise_fading=True, progress=False)


def test_features_match_their_definition_in_float64():
    """The cheaper feature graph (one power reduction, the phasor from two short tables) is
    the documented function: normalise, d = x conj(x[n-1]), derotate by the lag-1 angle,
    |y|^2 - 1 and y^4 / |y|^3, computed here directly in float64."""
    import torch
    from greatai.amc.model import _split, features
    assert (_split(1024), _split(128), _split(97), _split(12)) == (32, 8, 1, 3)
    rng = np.random.default_rng(1)
    for n in (1024, 96):
        x = (rng.standard_normal((6, n, 2)) * 3).astype(np.float32)
        x[:, :, 0] += 0.7                                           # a carrier: theta far from 0
        z = x[..., 0].astype(np.float64) + 1j * x[..., 1]
        p = np.mean(np.abs(z) ** 2, 1, keepdims=True)
        z = z / np.sqrt(p)
        d = z * np.conj(np.roll(z, 1, 1))
        y = z * np.exp(-1j * np.angle(d.sum(1, keepdims=True)) * np.arange(n))
        a = np.abs(y) ** 2
        y4 = y ** 4 / np.sqrt(a ** 3 + 1e-12)
        ref = np.stack([y.real, y.imag, d.real, d.imag, a - 1, y4.real, y4.imag], 1)
        f, pw = features(torch.from_numpy(x), with_power=True)
        np.testing.assert_allclose(pw.numpy(), p[:, 0], rtol=1e-5)
        np.testing.assert_allclose(f.numpy()[:, :5], ref[:, :5], atol=1e-3)     # float32 rounding
        np.testing.assert_allclose(f.numpy()[:, 5:], ref[:, 5:], atol=5e-3)    # y^4/|y|^3: steep where |y| -> 0
        assert np.mean(np.abs(f.numpy() - ref)) < 1e-4


def test_graph_method_exports_the_same_model_with_the_cheaper_feature_graph(shipped_model, tmp_path):
    """``graph``: no training, the same weights and decisions, stage 1 without full-length
    Cos/Sin; the record says what changed; the source's files are untouched."""
    import onnx
    from greatai.amc.engine import EarlyExitEngine
    src = contract.load(shipped_model, "amc")
    before = {r: fileio.sha256(src.file(r)) for r in ("stage1", "stage2")}
    meta = compress.compress(shipped_model, tmp_path / "g", method="graph", n_val=20, eval_n=0, progress=False)
    rec = meta["compression"]["graph"]
    assert meta["compression"]["method"] == "graph" and "pruning" not in meta["compression"]
    assert rec["argmax_agreement_stage1"] >= 0.99 and rec["max_abs_diff_probs_stage1"] < 5e-3
    assert rec["argmax_agreement_stage2"] >= 0.99 and rec["max_abs_diff_probs_stage2"] < 5e-3
    assert meta["cost"]["compressed"]["macs"] == meta["cost"]["float"]["macs"]
    g = onnx.load(str(tmp_path / "g" / "stage1.onnx")).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("Cos") == 2 and ops.count("Sin") == 2        # two short tables (32 and 32 angles)
    assert {r: fileio.sha256(src.file(r)) for r in ("stage1", "stage2")} == before
    rng = np.random.default_rng(3)
    iq = (rng.standard_normal((64, 1024)) + 1j * rng.standard_normal((64, 1024))).astype(np.complex64)
    a, b = EarlyExitEngine(shipped_model).classify(iq), EarlyExitEngine(tmp_path / "g").classify(iq)
    assert np.mean(a.label == b.label) >= 0.95
