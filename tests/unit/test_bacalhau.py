"""BacalhauNet (seed 004, Table 2) as an AMC architecture: the network as the seed gives
it, one exit under the model contract, and compression like the early-exit model."""
import json

import numpy as np
import pytest

from greatai import compress, contract
from greatai.compress.ptq import CompressError


@pytest.fixture(scope="module")
def tiny_bacalhau(tmp_path_factory):
    from greatai.amc import train
    out = tmp_path_factory.mktemp("bacalhau") / "amc_bacalhau"
    train.train(out, "tiny-bacalhau", seed=3, progress=False)
    return out


def test_the_network_is_table_2():
    import torch
    import torch.nn as nn
    from greatai.amc.model import BacalhauNet, Residual, count_macs
    m = BacalhauNet(11).eval()
    assert isinstance(m.clip, nn.Hardtanh) and (m.clip.min_val, m.clip.max_val) == (-2.0, 3.0)
    dw = [c for c in m.trunk.modules() if isinstance(c, nn.Conv1d) and c.groups > 1]
    pw = [c for c in m.trunk.modules() if isinstance(c, nn.Conv1d) and c.groups == 1]
    assert [c.kernel_size[0] for c in dw] == [27, 21, 15, 9, 9]
    assert [c.stride[0] for c in dw] == [2, 1, 2, 1, 2]
    assert all(c.groups == c.in_channels == c.out_channels for c in dw)       # depthwise
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in pw] == \
        [(2, 24, 1), (24, 24, 1), (24, 48, 1), (48, 48, 1), (48, 48, 1)]      # pointwise
    assert [isinstance(b, Residual) for b in m.trunk] == [False, True, False, True, False]
    assert (m.exit1.fc.in_features, m.exit1.fc.out_features) == (48, 11)
    h = m.trunk(torch.zeros(1, 2, 1024))
    assert tuple(h.shape) == (1, 48, 128)                                    # Table 2: 128 x 48 into the pool
    # MACs by hand: depthwise C*k*L_out + pointwise Cin*Cout*L_out per layer, + the 48 x 11 layer
    layers = [(2, 24, 27, 512), (24, 24, 21, 512), (24, 48, 15, 256), (48, 48, 9, 256), (48, 48, 9, 128)]
    assert count_macs(m, 1024) == {"stage1": sum(ci * k * n + ci * co * n for ci, co, k, n in layers) + 48 * 11}


def test_one_exit_model_under_the_contract(tiny_bacalhau, tmp_path):
    from greatai.amc.engine import EarlyExitEngine
    meta = json.loads((tiny_bacalhau / "model.json").read_text())
    assert meta["exits"] == 1 and list(meta["files"]) == ["stage1"] and "thresholds" not in meta
    assert meta["architecture"]["arch"] == "bacalhau" and meta["name"] == "amc_bacalhau"
    eng = EarlyExitEngine(tiny_bacalhau)
    g = np.random.default_rng(0)
    x = (g.standard_normal((6, 1024)) + 1j * g.standard_normal((6, 1024))).astype(np.complex64)
    x[5] = 0                                                                  # an all-zero frame
    for mode in ("early", "exit1", "exit2"):
        r = eng.classify(x, mode=mode)
        assert r.exit.tolist() == [1, 1, 1, 1, 1, 0] and r.label[5] == -1
        assert np.allclose(r.probs[:5].sum(1), 1, atol=1e-4)
    # without "exits": 1 it is an early-exit model, whose stage 2 is missing: named
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "stage1.onnx").write_bytes((tiny_bacalhau / "stage1.onnx").read_bytes())
    (bad / "model.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "exits"}))
    with pytest.raises(contract.ModelError, match="stage2"):
        contract.load(bad, "amc")


def test_bacalhau_as_torch_matches_its_onnx(tiny_bacalhau):
    import torch
    from greatai.compress import amc
    src = contract.load(tiny_bacalhau, "amc")
    m = amc.to_torch(src)
    x, _, _ = amc._frames(src.meta, 7, 2)
    p = amc._run(amc._session(src.file("stage1")), "iq", x)[0]
    with torch.no_grad():
        (z,) = m(torch.from_numpy(x))
    np.testing.assert_allclose(torch.softmax(z, 1).numpy(), p, atol=2e-3)


def test_bacalhau_prunes_and_quantises_like_the_others(tiny_bacalhau, tmp_path):
    """Magnitude pruning then QAT at 6-bit weights and inputs (the seed's choice), in
    seconds: one graph, sparse, on its grid, loaded by the engine; structured pruning is
    refused with the reason."""
    import onnx
    from onnx import numpy_helper
    from greatai.amc.engine import EarlyExitEngine
    out = tmp_path / "pq"
    meta = compress.compress(tiny_bacalhau, out, method="magnitude", sparsity=0.5, n_train=4, n_val=10, eval_n=2,
                             progress=False, qat_bits=6, act_bits=6, qat_epochs=1)
    assert list(meta["files"]) == ["stage1"] and meta["exits"] == 1 and "thresholds" not in meta
    assert meta["compression"]["method"] == "magnitude+qat-w6a6"
    q = [numpy_helper.to_array(i) for i in onnx.load(str(out / "stage1.onnx")).graph.initializer
         if i.name.endswith("w_q")]
    assert len(q) == 11 and max(int(np.abs(v).max()) for v in q) <= 31
    assert sum(int((v == 0).sum()) for v in q) / sum(v.size for v in q) >= 0.49
    k = meta["cost"]["compressed"]
    assert k["bops"] == k["macs"] * 6 * 6 and set(k["parts"]) == {"stage1"}
    assert meta["evaluation"]["threshold"] is None
    assert EarlyExitEngine(out).classify(np.ones((2, 1024), np.complex64)).exit.tolist() == [1, 1]
    with pytest.raises(CompressError, match="structured pruning is built for the 'conv' AMC architecture"):
        compress.compress(tiny_bacalhau, tmp_path / "s", method="structured", sparsity=0.5, n_train=4, n_val=10,
                          eval_n=0, progress=False)
    assert not (tmp_path / "s").exists()
