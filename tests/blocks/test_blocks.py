import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from greatai import sim
from helpers import passthrough_with_broken_step


def run_classifier(x, **kw):
    tb = gr.top_block()
    src = blocks.vector_source_c(x)
    amc = greatai.amc_classifier(**kw)
    snk = blocks.vector_sink_c()
    dbg = blocks.message_debug()
    tb.connect(src, amc, snk)
    tb.msg_connect(amc, "classification", dbg, "store")
    tb.run()
    msgs = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    return amc, np.array(snk.data(), np.complex64), snk.tags(), msgs


@pytest.fixture(scope="module")
def stream():
    st = sim.StreamSimulator("QPSK:0.004,WBFM:0.004,NOISE:0.004", 1e6, snr_db=(25, 25), seed=3)
    return st.read(1024 * 60)[0]


def test_passthrough_tags_and_messages(stream, shipped_model):
    amc, y, tags, msgs = run_classifier(stream, model=str(shipped_model), overload="block", batch_frames=8)
    np.testing.assert_array_equal(y, stream)                     # IQ unchanged, nothing dropped
    amc_tags = [t for t in tags if pmt.symbol_to_string(t.key) == "amc"]
    assert [t.offset for t in amc_tags] == list(range(0, 60 * 1024, 1024))
    assert len(msgs) == 60
    m = msgs[0]
    assert {"label", "confidence", "exit", "offset", "probs", "status"} <= set(m)
    assert [m["offset"] for m in msgs] == list(range(0, 60 * 1024, 1024))
    assert m["exit"] in (1, 2) and len(m["probs"]) == 11
    names = ["QPSK", "WBFM", "NOISE"]                              # 4000-sample dwells in turn
    starts = np.arange(60) * 1024
    inside = (starts % 4000) + 1024 <= 4000                      # frames not straddling a dwell change
    truth = np.array(names)[(starts // 4000) % 3]
    labels = np.array([m["label"] for m in msgs])
    acc = np.mean(labels[inside] == truth[inside])
    assert acc > 0.85
    assert amc.metrics()["classified"] == 60 and amc.skipped() == 0


@pytest.mark.parametrize("batch_frames", [512, 4])     # one short batch; whole batches and a leftover
def test_every_nth_frame_and_setters(stream, shipped_model, batch_frames):
    amc, y, tags, msgs = run_classifier(stream, model=str(shipped_model), every_n=4, overload="block",
                                        batch_frames=batch_frames)
    np.testing.assert_array_equal(y, stream)
    assert [m["offset"] for m in msgs] == list(range(0, 60 * 1024, 4 * 1024))
    assert [t.offset for t in tags if pmt.symbol_to_string(t.key) == "amc"] == list(range(0, 60 * 1024, 4 * 1024))
    amc.set_threshold(0.5)
    assert amc.threshold() == 0.5
    amc.set_threshold(-1)
    assert amc.threshold() == amc.engine.meta["thresholds"]["exit"]
    with pytest.raises(ValueError, match="every_n"):
        amc.set_every_n(0)


@pytest.mark.parametrize("overload", ["block", "skip"])
def test_a_failing_work_call_passes_the_iq_and_ends(stream, shipped_model, overload):
    """A bug inside work() must not end the block's thread (GNU Radio would then wait for the
    flowgraph for ever): the IQ passes on unclassified and the frames are counted as errors."""
    amc = greatai.amc_classifier(model=str(shipped_model), overload=overload, batch_frames=8)
    y = passthrough_with_broken_step(amc, "_publish", stream)
    np.testing.assert_array_equal(y, stream)
    assert amc.metrics()["errors"] > 0


def test_invalid_iq_is_reported_and_stream_continues(stream, shipped_model):
    x = stream.copy()
    x[2048:3072] = 0
    x[5000] = np.nan
    amc, y, tags, msgs = run_classifier(x, model=str(shipped_model), overload="block")
    assert len(y) == len(x)
    st = {m["offset"]: m["status"] for m in msgs}
    assert st[2048] == "zero" and st[4096] == "nonfinite" and st[0] == "ok"
    assert amc.metrics()["invalid"] == 2


def test_overload_skips_frames_but_never_drops_iq(shipped_model):
    x = (np.random.default_rng(0).standard_normal(1024 * 600) * (1 + 1j)).astype(np.complex64)
    amc, y, tags, msgs = run_classifier(x, model=str(shipped_model), overload="skip", max_pending=1,
                                        batch_frames=4, threads=1)
    assert len(y) == len(x)
    np.testing.assert_array_equal(y, x)
    m = amc.metrics()
    assert m["skipped"] > 0 and m["classified"] + m["skipped"] == 600
    assert len(msgs) == m["classified"]


def test_bad_parameters_fail_at_construction(shipped_model, tmp_path):
    with pytest.raises(ValueError, match="cuda"):
        greatai.amc_classifier(model=str(shipped_model), provider="cuda")
    with pytest.raises(ValueError, match="not found"):
        greatai.amc_classifier(model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="overload"):
        greatai.amc_classifier(model=str(shipped_model), overload="maybe")


def test_sim_source_tags_truth():
    tb = gr.top_block()
    src = greatai.sim_source(samp_rate=1e5, schedule="BPSK:0.01,NOISE:0.01", snr_min=5, snr_max=5, seed=2)
    head = blocks.head(gr.sizeof_gr_complex, 4000)
    snk = blocks.vector_sink_c()
    tb.connect(src, head, snk)
    tb.run()
    tags = [(t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)) for t in snk.tags()]
    assert (0, "sim_label", "BPSK") in tags and (1000, "sim_label", "NOISE") in tags
    assert (0, "sim_snr", 5.0) in tags
    assert len(snk.data()) == 4000


def test_result_summary_scores_against_truth(shipped_model, tmp_path):
    import json
    tb = gr.top_block()
    src = greatai.sim_source(samp_rate=1e6, schedule="QPSK:0.01,WBFM:0.01,NOISE:0.01", snr_min=25, snr_max=25,
                             seed=4)
    head = blocks.head(gr.sizeof_gr_complex, 1024 * 120)
    amc = greatai.amc_classifier(model=str(shipped_model), overload="block")
    summ = greatai.result_summary(json_path=str(tmp_path / "s.json"), interval=100)
    tb.connect(src, head, amc, summ)
    tb.run()
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 120 and s["scored"] == 120
    assert s["accuracy"] > 0.85
    assert set(s["counts"]) <= {"QPSK", "WBFM", "NOISE"} | set(sim.CLASSES)


def test_a_failing_stop_is_logged_not_fatal(tmp_path):
    """An exception out of stop() would abort the process: a summary that cannot be
    written (its folder is a file) is logged, and the flowgraph ends normally."""
    (tmp_path / "not_a_dir").write_text("x")
    tb = gr.top_block()
    src = blocks.vector_source_c(np.ones(4096, np.complex64))
    summ = greatai.result_summary(json_path=str(tmp_path / "not_a_dir" / "s.json"), interval=100)
    tb.connect(src, summ)
    tb.run()
    assert summ.summary()["frames"] == 0 and not (tmp_path / "not_a_dir").is_dir()


def _batch_messages(stream, model, seconds=None, make=None, **kw):
    """Run vector source -> amc_classifier -> null sink with the batch port stored; the
    stream once (seconds=None) or looped for ``seconds``.  Returns (block, messages)."""
    import time
    from gnuradio.greatai.codec import to_python
    tb = gr.top_block()
    src = blocks.vector_source_c(stream, seconds is not None)
    amc = (make or greatai.amc_classifier)(model=str(model), overload="block", **kw)
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    dbg = blocks.message_debug()
    tb.connect(src, amc, snk)
    tb.msg_connect(amc, "batch", dbg, "store")
    if seconds is None:
        tb.run()
    else:
        tb.start()
        time.sleep(seconds)
        tb.stop()
        tb.wait()
    return amc, [to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]


def test_batch_port_carries_one_vector_dict_per_batch(stream, shipped_model):
    _, msgs = _batch_messages(stream, shipped_model, batch_frames=16, batch_rate=0)
    offsets = np.concatenate([m["offset"] for m in msgs])
    assert offsets.tolist() == list(range(0, 60 * 1024, 1024)) and max(len(m["offset"]) for m in msgs) <= 16
    m = msgs[0]
    assert m["format"] == "greatai-batch/1" and m["frames"] == len(m["offset"])
    assert list(m["per_frame"]) == ["offset", "label", "exit", "confidence", "entropy", "status"]
    assert all(len(m[k]) == m["frames"] for k in m["per_frame"])
    assert list(m["classes"]) == list(sim.CLASSES) and len(m["probs"]) == 11
    assert set(np.concatenate([x["exit"] for x in msgs]).tolist()) <= {1, 2}
    # the same results as the per-frame messages, frame by frame
    amc, _, _, per_frame = run_classifier(stream, model=str(shipped_model), overload="block", batch_frames=16)
    from greatai.results import frames
    expanded = [f for x in msgs for f in frames(x)]
    assert [f["label"] for f in expanded] == [f["label"] for f in per_frame]
    assert [f["exit"] for f in expanded] == [f["exit"] for f in per_frame]
    np.testing.assert_allclose([f["confidence"] for f in expanded], [f["confidence"] for f in per_frame], atol=1e-6)
    assert {f["status"] for f in expanded} == {"ok"}


def test_per_frame_messages_are_capped_and_counted(stream, shipped_model):
    """Past message_rate, per-frame messages are not built: counted as unpublished (the
    batch port still carries every frame)."""
    amc, _, tags, msgs = run_classifier(stream, model=str(shipped_model), overload="block", batch_frames=16,
                                        message_rate=5)
    assert 5 <= len(msgs) < 60 and amc.metrics()["unpublished"] == 60 - len(msgs)
    assert len([t for t in tags if pmt.symbol_to_string(t.key) == "amc"]) == 60     # tags are not capped
    with pytest.raises(ValueError, match="message_rate"):
        greatai.amc_classifier(model=str(shipped_model), message_rate=-1)


def test_batch_port_merges_batches_to_its_rate(stream, shipped_model):
    """batch_rate caps the batch messages per second; merged messages keep every frame, in
    order.  The feed's clock is a counter (0.1 s a look), so the merging does not depend on
    how fast this machine is: with batch_rate 4 (0.25 s) a message goes out every 3rd look."""
    ticks = iter(np.arange(0, 1e6, 0.1))
    amc = [None]

    def build(**kw):
        a = greatai.amc_classifier(**kw)
        a.feed.clock = lambda: float(next(ticks))
        amc[0] = a
        return a
    a, msgs = _batch_messages(stream, shipped_model, batch_frames=4, batch_rate=4, make=build)
    assert max(len(m["offset"]) for m in msgs) > 4 and len(msgs) < 60 // 4   # batches were merged
    offsets = np.concatenate([m["offset"] for m in msgs])
    # every frame, in order, none twice; the last merged message goes out as the block stops,
    # when message_debug may already have stopped taking messages (documented)
    assert offsets.tolist() == list(range(0, len(offsets) * 1024, 1024)) and len(offsets) >= 60 - 3 * 4
    assert a.metrics()["classified"] == 60
    with pytest.raises(ValueError, match="batch_rate"):
        greatai.amc_classifier(model=str(shipped_model), batch_rate=-1)


def test_int8_model_runs_in_the_block_like_float(stream, shipped_model, tmp_path):
    """A model from greatai compress loads through the block's model parameter, no other change,
    and labels a recording within the stated agreement of float (90 % of frames, any exit)."""
    from greatai import compress
    out = tmp_path / "amc_int8"
    compress.compress(shipped_model, out, n_calib=8, n_val=40, eval_n=0, progress=False)
    _, y, _, msgs = run_classifier(stream, model=str(out), overload="block", batch_frames=8)
    _, _, _, ref = run_classifier(stream, model=str(shipped_model), overload="block", batch_frames=8)
    np.testing.assert_array_equal(y, stream)
    assert len(msgs) == len(ref) == 60
    assert np.mean([m["label"] == r["label"] for m, r in zip(msgs, ref)]) >= 0.9
