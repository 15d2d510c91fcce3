"""Models on demand in running flowgraphs: every model-running block swaps its model between
two batches (no sample lost or reordered, one switch, each result naming its model), refuses a
bad model with a reason and keeps the old one, and answers every request on model_status."""
import shutil
from pathlib import Path

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from gnuradio.greatai.codec import to_python
from greatai import contract, hotswap, sim
from helpers import reseal

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


class Gate(gr.sync_block):
    """Passes items through; when ``at`` items have gone by, runs ``fn()`` once, holding the
    stream (upstream of the model block) until it returns."""

    def __init__(self, at, fn, dtype=np.complex64, vlen=1):
        sig = dtype if vlen == 1 else (dtype, vlen)
        gr.sync_block.__init__(self, "gate", [sig], [sig])
        self.at, self.fn, self.done = int(at), fn, False

    def work(self, input_items, output_items):
        n = len(output_items[0])
        w = self.nitems_written(0)
        if not self.done and w + n > self.at:
            if w < self.at:
                n = self.at - w
            else:
                self.done = True
                self.fn()
        output_items[0][:n] = input_items[0][:n]
        return n


def messages(dbg):
    return [to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]


def copy_model(src, dst, **meta_changes):
    shutil.copytree(src, dst)
    meta = contract.read_json(dst / "model.json")
    meta.update(meta_changes)
    contract.write(dst / "model.json", meta)
    return dst


@pytest.fixture(scope="module")
def iq():
    st = sim.StreamSimulator("QPSK:0.01,BPSK:0.01,NOISE:0.01", 1e6, snr_db=(20, 20), seed=7)
    return st.read(1024 * 400)[0]


def run_amc(x, at, fn_of, **kw):
    tb = gr.top_block()
    amc = greatai.amc_classifier(**kw)
    gate = Gate(at, lambda: fn_of(amc))
    snk, status, batch = blocks.vector_sink_c(), blocks.message_debug(), blocks.message_debug()
    tb.connect(blocks.vector_source_c(x), gate, amc, snk)
    tb.msg_connect(amc, "model_status", status, "store")
    tb.msg_connect(amc, "batch", batch, "store")
    tb.run()
    tags = [(t.offset, to_python(t.value)) for t in snk.tags() if pmt.symbol_to_string(t.key) == "amc"]
    return amc, np.array(snk.data(), np.complex64), tags, messages(status), messages(batch)


@pytest.mark.parametrize("overload", ["block", "skip"])
def test_amc_swaps_between_batches_losing_no_sample(iq, overload):
    def swap(amc):
        rid = amc.set_model("amc_ee_int8")                    # a shipped name, as GRC's callback passes it
        assert amc.slot.idle(60)
        swap.rid = rid
    amc, y, tags, status, batches = run_amc(iq, 150 * 1024, swap, overload=overload, batch_frames=16,
                                             batch_rate=0, max_pending=2)
    np.testing.assert_array_equal(y, iq)                      # every sample, in order
    names = [t["model"] for _, t in tags]
    assert all(t["model_version"] for _, t in tags)
    k = names.index("amc_ee_int8")
    assert set(names[:k]) == {"amc_ee"} and set(names[k:]) == {"amc_ee_int8"}   # one switch, then only the new
    r = amc.runner                # not before the request: the frames then in the block's input buffer, its
    held = r.buffered_batches() + (0 if r.sync else r.max_pending) + 1        # queue or inference may run on the new
    assert tags[k][0] >= 150 * 1024 - held * r.batch_frames * 1024         # model (a loaded CI skips deep into it)
    if overload == "block":
        assert [o for o, _ in tags] == list(range(0, len(iq), 1024))
    assert len(status) == 1 and status[0]["ok"] and status[0]["id"] == swap.rid
    assert status[0]["model"] == "amc_ee_int8" and status[0]["previous"].startswith("amc_ee ")
    bnames = [b["model"] for b in batches]                    # the batch port: never one record of two models
    kb = bnames.index("amc_ee_int8")
    assert set(bnames[:kb]) == {"amc_ee"} and set(bnames[kb:]) == {"amc_ee_int8"}
    m = amc.metrics()
    assert m["classified"] + m["skipped"] + m["invalid"] == 400 and amc.slot.counts["swaps"] == 1


def bad_models(tmp_path):
    src = MODELS / "amc_ee"
    not_onnx = copy_model(src, tmp_path / "not_onnx")
    (not_onnx / "stage1.onnx").write_bytes(b"this is not an ONNX file")
    reseal(not_onnx)
    shape = copy_model(src, tmp_path / "shape", frame_length=512)
    reseal(shape)
    classes = copy_model(src, tmp_path / "classes")
    meta = contract.read_json(classes / "model.json")
    meta["classes"] = meta["classes"][:8]
    contract.write(classes / "model.json", meta)
    altered = copy_model(src, tmp_path / "altered")
    b = bytearray((altered / "stage2.onnx").read_bytes())
    b[-10] ^= 1
    (altered / "stage2.onnx").write_bytes(bytes(b))
    truncated = copy_model(src, tmp_path / "truncated")
    b = (truncated / "stage1.onnx").read_bytes()
    (truncated / "stage1.onnx").write_bytes(b[:len(b) // 2])
    package = hotswap.pack(MODELS / "amc_ee_int8")
    u8 = lambda d: pmt.cons(pmt.make_dict(), pmt.init_u8vector(len(d), list(d)))    # noqa: E731
    return [
        (pmt.intern(str(not_onnx)), "cannot load ONNX model"),
        (pmt.intern(str(shape)), "takes input shape"),
        (pmt.intern(str(classes)), "has 11 outputs but its metadata lists 8 classes"),
        (pmt.to_pmt({"path": str(altered), "id": "x1"}), "fails its SHA-256 check"),
        (pmt.intern(str(truncated)), "fails its SHA-256 check"),
        (u8(package[:len(package) // 3]), "truncated or corrupt"),
        (pmt.intern(str(MODELS / "protobeam")), "is a 'protobeam' model"),
        (pmt.intern(str(tmp_path / "nowhere")), "model file not found"),
        (pmt.from_long(7), "wrong PMT type"),
    ]


def post_and_wait(block, msg, n):
    """Post a request to the block's model port; wait until it is the n-th taken and loaded."""
    import time
    block.to_basic_block()._post(pmt.intern("model"), msg)
    deadline = time.monotonic() + 60
    while block.slot.counts["requests"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert block.slot.idle(60)


def test_amc_refuses_bad_models_with_reasons_and_keeps_running(iq, tmp_path):
    cases = bad_models(tmp_path)

    def post(amc):
        for i, (msg, _) in enumerate(cases):               # one at a time: the waiting requests are bounded
            post_and_wait(amc, msg, i + 1)
    amc, y, tags, status, _ = run_amc(iq[:100 * 1024], 20 * 1024, post, overload="block", batch_frames=8)
    np.testing.assert_array_equal(y, iq[:100 * 1024])
    assert {t["model"] for _, t in tags} == {"amc_ee"} and len(tags) == 100
    assert len(status) == len(cases) and not any(s["ok"] for s in status)
    for s in status:
        assert s["status"] == "refused" and s["running"].startswith("amc_ee ")
    reasons = [s["reason"] for s in status]
    for _, want in cases:                                    # every case answered with its own reason
        assert any(want in r for r in reasons), (want, reasons)
    assert [s["id"] for s in status if s["request"] == str(tmp_path / "altered")] == ["x1"]


def test_a_model_package_pdu_swaps_with_no_files_shared(iq):
    data = hotswap.pack(MODELS / "amc_ee_int8")

    def post(amc):
        post_and_wait(amc, pmt.cons(pmt.to_pmt({"id": "pkg"}), pmt.init_u8vector(len(data), list(data))), 1)
    amc, y, tags, status, _ = run_amc(iq[:100 * 1024], 40 * 1024, post, overload="block", batch_frames=8)
    assert status[0]["ok"] and status[0]["id"] == "pkg" and status[0]["request"].startswith("package (")
    assert tags[-1][1]["model"] == "amc_ee_int8" and tags[0][1]["model"] == "amc_ee"


# ---------------------------------------------------------------- ProtoBeam
def test_protobeam_swap_resets_calibration_and_keeps_the_old_file(tmp_path):
    from greatai.protobeam import sim as bsim
    from greatai.protobeam.engine import ProtoBeamEngine
    L = bsim.FRAME_LENGTH
    rng = np.random.default_rng(3)
    beams = np.tile(np.arange(24), 12)
    x = bsim.generate(rng, bsim.front_end(0), beams, positions=np.zeros(len(beams), int))[0].astype(np.complex64)
    cal = tmp_path / "cal.json"
    e = ProtoBeamEngine()
    for b in range(24):
        e.add_shots(b, x[beams == b][:4])
    e.save(cal)
    before = cal.read_bytes()
    # another encoder: the same weights in a file whose bytes (and so hash) differ
    other = copy_model(MODELS / "protobeam", tmp_path / "other", version="9")
    import onnx
    m = onnx.load(other / "encoder.onnx")
    onnx.helper.set_model_props(m, {"note": "another encoder"})
    onnx.save(m, other / "encoder.onnx")
    reseal(other)
    answers = []

    def swap(pb):
        pb.capture(3, 10 ** 6)                              # a capture in flight
        assert pb.calibrated_beams() == 24
        pb.set_model(other)
        assert pb.slot.idle(60)
        answers.append("requested")
    tb = gr.top_block()
    pb = greatai.protobeam(calibration=str(cal), batch_frames=8)
    gate = Gate(len(beams) // 2 * L, lambda: swap(pb))
    snk, status, calib = blocks.vector_sink_c(), blocks.message_debug(), blocks.message_debug()
    tb.connect(blocks.vector_source_c(x.ravel()), gate, pb, snk)
    tb.msg_connect(pb, "model_status", status, "store")
    tb.msg_connect(pb, "calibration", calib, "store")
    tb.run()
    assert np.array_equal(np.array(snk.data(), np.complex64), x.ravel())
    st = messages(status)
    assert len(st) == 1 and st[0]["ok"] and st[0]["model_version"] == "9"
    assert "calibration reset" in st[0]["note"] and "capture of beam B03 cancelled" in st[0]["note"]
    assert "kept for the old encoder" in st[0]["note"]
    assert pb.calibrated_beams() == 0 and pb.calib.capturing is None
    assert cal.read_bytes() == before                        # the old encoder's calibration file, untouched
    assert any(c["event"] == "model" for c in messages(calib))
    tags = [to_python(t.value) for t in snk.tags() if pmt.symbol_to_string(t.key) == "protobeam"]
    vers = [t["model_version"] for t in tags]
    k = vers.index("9")
    assert set(vers[:k]) == {contract.load(MODELS / "protobeam", "protobeam").version}
    assert set(vers[k:]) == {"9"} and all(t["calibrated"] is False for t in tags[k:])
    # swapping back to the encoder the file was made with loads it again
    pb.set_model(MODELS / "protobeam")
    assert pb.slot.idle(60)
    pb.slot.acquire()
    assert pb.calibrated_beams() == 24 and "24 beams loaded" in pb.slot.last["note"]


# ---------------------------------------------------------------- the spectrogram blocks
def run_windows(block, db, at, fn):
    tb = gr.top_block()
    N = db.shape[1]
    gate = Gate(at, lambda: fn(block), np.float32, N)
    status, out = blocks.message_debug(), blocks.message_debug()
    tb.connect(blocks.vector_source_f(db.ravel().tolist(), False, N), gate, block)
    port = "forecast" if "forecast" in block.name() else "segments"
    vlen = block.output_signature().sizeof_stream_item(0) // 4
    tb.connect(block, blocks.null_sink(gr.sizeof_float * vlen))
    tb.msg_connect(block, "model_status", status, "store")
    tb.msg_connect(block, port, out, "store")
    tb.run()
    return messages(status), messages(out)


@pytest.mark.parametrize("kind", ["forecast", "segment"])
def test_spectrogram_blocks_swap_and_refuse_the_other_task(kind, tmp_path):
    from helpers import stft_vectors
    db, _ = stft_vectors(5, 400)
    task = "forecast" if kind == "forecast" else "segment"
    v2 = copy_model(MODELS / kind, tmp_path / "v2", version="2")
    wrong = MODELS / ("segment" if kind == "forecast" else "forecast")

    def swap(b):
        b.set_model(wrong)
        b.set_model(v2)
        assert b.slot.idle(60)
    make = greatai.spectrogram_forecaster if kind == "forecast" else greatai.spectrogram_segmenter
    blk = make(samp_rate=20e6, every=8)
    status, out = run_windows(blk, db, 200, swap)
    assert [s["ok"] for s in status] == [False, True]
    assert f"this needs a {task!r} model" in status[0]["reason"]
    vers = [m["model_version"] for m in out]
    assert vers and vers[-1] == "2" and all(m["model"] == kind for m in out)
    k = vers.index("2")
    assert "2" not in vers[:k] and set(vers[k:]) == {"2"}
    assert blk.metrics()["model_version"] == "2" and blk.metrics()["model_swaps"] == 1


# ---------------------------------------------------------------- the wideband scanner
def test_the_scanner_swaps_its_classifier_and_refuses_other_classes():
    from test_scanner_blocks import FS
    scan = greatai.emitter_scanner(FS, 0.0, overload="block")
    det, answers = scan.detector, []
    det.slot.answer = answers.append
    scan.set_model("amc_hw")                              # 12 classes: emitters are followed by label
    assert det.slot.idle(60) and not answers[0]["ok"] and "are not the scanner's" in answers[0]["reason"]
    scan.set_model("amc_ee_int8")
    assert det.slot.idle(60)
    frames = np.ones((4, 1024), np.complex64)
    _, res, engine = det._classify((np.zeros(4, np.int64), frames))     # the next batch takes the new model
    assert engine.model.name == "amc_ee_int8" and len(res.label) == 4
    assert answers[-1]["ok"] and answers[-1]["model"] == "amc_ee_int8" and scan.engine is engine
