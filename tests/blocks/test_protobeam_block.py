"""greatai.protobeam and greatai.protobeam_source in flowgraphs, calibration by message."""
import json

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from gnuradio.greatai import control
from greatai.protobeam import sim
from greatai.protobeam.engine import ProtoBeamEngine

L = sim.FRAME_LENGTH


def frames_of(fe, beams, seed=0, position=0):
    """Frames of one scenario: a front end with the receiver at one position."""
    beams = np.asarray(beams)
    return sim.generate(np.random.default_rng(seed), sim.front_end(fe), beams,
                        positions=np.full(len(beams), position))[0]


def pdu(beam, iq):
    return control.pdu(beam, iq)


def cmd(**kw):
    return control.command(kw.pop("cmd"), **kw)


def run(x, messages=(), **kw):
    """Stream x through protobeam; messages are posted to 'calibrate' before the start."""
    tb = gr.top_block()
    src = blocks.vector_source_c(np.asarray(x, np.complex64).ravel().tolist())
    pb = greatai.protobeam(**kw)
    snk = blocks.vector_sink_c()
    beam, cal = blocks.message_debug(), blocks.message_debug()
    tb.connect(src, pb, snk)
    tb.msg_connect(pb, "beam", beam, "store")
    tb.msg_connect(pb, "calibration", cal, "store")
    for m in messages:
        pb.to_basic_block()._post(pmt.intern("calibrate"), m)
    tb.run()
    from gnuradio.greatai.codec import to_python
    beams = [to_python(beam.get_message(i)) for i in range(beam.num_messages())]
    cals = [to_python(cal.get_message(i)) for i in range(cal.num_messages())]
    return pb, np.array(snk.data(), np.complex64), snk.tags(), beams, cals


def test_passthrough_tags_and_beam_messages():
    beams = np.arange(24).repeat(2)
    x = frames_of(0, beams, seed=1)
    pb, y, tags, msgs, _ = run(x)
    assert np.array_equal(y, x.ravel())
    t = [t for t in tags if pmt.symbol_to_string(t.key) == "protobeam"]
    assert [tt.offset for tt in t] == list(range(0, len(beams) * L, L))
    assert len(msgs) == len(beams)
    m = msgs[5]
    assert set(m) >= {"beam", "label", "confidence", "offset", "calibrated", "calibrated_beams", "status"}
    assert m["offset"] == 5 * L and m["calibrated"] is False and m["label"] == f"B{m['beam']:02d}"
    # uncalibrated: the default prototypes (mean over all training scenarios) beat chance
    acc = np.mean([mm["beam"] for mm in msgs] == beams)
    assert acc > 2 / 24


def test_batch_port_carries_every_frame_and_lean_form_has_no_embeddings():
    from gnuradio.greatai.codec import to_python
    from greatai.results import frames
    beams = np.arange(24).repeat(2)
    x = frames_of(0, beams, seed=1)
    got = {}
    for emb in (256, 0):
        tb = gr.top_block()
        src = blocks.vector_source_c(x.ravel().tolist())
        pb = greatai.protobeam(batch_frames=8, batch_rate=0, batch_embeddings=emb, message_rate=10)
        dbg, per = blocks.message_debug(), blocks.message_debug()
        tb.connect(src, pb, blocks.null_sink(gr.sizeof_gr_complex))
        tb.msg_connect(pb, "batch", dbg, "store")
        tb.msg_connect(pb, "beam", per, "store")
        tb.run()
        got[emb] = [to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
        assert 10 <= per.num_messages() < len(beams) and pb.metrics()["unpublished"] == len(beams) - per.num_messages()
    full, lean = got[256], got[0]
    rows = [f for m in full for f in frames(m)]
    assert [r["offset"] for r in rows] == list(range(0, len(beams) * L, L))
    assert {"beam", "label", "confidence", "distance", "calibrated", "status"} <= set(rows[0])
    assert rows[0]["status"] == "ok" and rows[3]["label"] == f"B{rows[3]['beam']:02d}"
    assert full[0]["embedding"].size == full[0]["frames"] * full[0]["dim"] and "prototypes" in full[0]
    assert "embedding" not in lean[0] and "prototypes" not in lean[0]
    assert [r["beam"] for r in rows] == [r["beam"] for m in lean for r in frames(m)]


def test_pdu_calibration_applies_and_is_answered():
    shots = frames_of(4, np.arange(24).repeat(4), seed=2)
    msgs = [pdu(b, shots[b * 4:(b + 1) * 4]) for b in range(24)]
    x = frames_of(4, np.arange(24), seed=3)
    pb, _, _, beams, cals = run(x, msgs)
    assert len(cals) == 24 and all(c["ok"] for c in cals)
    assert cals[-1]["calibrated_beams"] == 24 and list(cals[-1]["shots"]) == [4] * 24
    assert all(m["calibrated"] for m in beams)
    assert pb.metrics()["shots"] == 96
    assert pb.engine.metric == "euclidean" and pb.engine.whitening() is None
    cal, _, _, beams2, _ = run(x, msgs, metric="calibrated")      # 96 shots, 72 degrees of freedom: whitened
    t = cal.engine.whitening()
    assert t is not None and t.shape == (cal.engine.dim, cal.engine.dim)
    assert [m["beam"] for m in beams2] == cal.engine.classify(x).beam.tolist()


def test_reference_waveform_parameter_and_pdus_sent_on_another_reference(tmp_path):
    """The block runs on the user's reference; shots sent on another one are refused, named."""
    from greatai.protobeam import waveforms
    shots = frames_of(4, [3, 3], seed=2)
    msgs = [control.pdu(3, shots, waveform="qpsk64_sps4"), control.pdu(3, shots, waveform="ofdm256"),
            control.pdu(3, shots, waveform=waveforms.digest(waveforms.named("ofdm256")))]
    pb, y, _, beams, cals = run(frames_of(4, np.arange(8), seed=3), msgs, waveform="ofdm256", pool_frames=2)
    assert len(y) == 8 * L and len(beams) == 8
    assert [c["ok"] for c in cals] == [False, True, True]
    assert "calibrate on the block's waveform" in cals[0]["message"]
    assert pb.engine.shots()[3] == 4 and pb.engine.pool == 2
    np.zeros(200, np.complex64).tofile(tmp_path / "zeros.cf32")
    with pytest.raises(ValueError, match="all zeros"):
        greatai.protobeam(waveform=str(tmp_path / "zeros.cf32"))


def test_capture_command_takes_the_next_k_frames():
    x = frames_of(5, [7] * 3 + [1] * 5, seed=4)
    pb, _, _, beams, cals = run(x, [cmd(cmd="capture", beam=7, k=3)], batch_frames=8)
    assert pb.engine.shots()[7] == 3 and pb.engine.calibrated_beams == 1
    assert [c["event"] for c in cals] == ["capture", "capture"] and all(c["ok"] for c in cals)
    # the frames after the last shot already see beam 7's new prototype
    assert [m["calibrated_beams"] for m in beams] == [0, 0, 0, 1, 1, 1, 1, 1]


def test_bad_calibration_messages_are_refused_and_stream_flows(tmp_path):
    x = frames_of(0, np.arange(6), seed=5)
    x[2] = np.nan
    bad = [
        cmd(cmd="capture", beam=31, k=2),                         # unknown beam
        cmd(cmd="capture", beam=3, k=0),                          # k = 0
        pdu(4, np.zeros(1000, np.complex64)),                     # wrong length
        pdu(4, np.full(L, np.nan, np.complex64)),                 # NaN IQ
        pmt.from_long(5),                                         # wrong PMT type
        pmt.intern("jump"),                                       # unknown command
        cmd(cmd="load", path=str(tmp_path / "nope.json")),        # missing file
        pmt.intern("save"),                                       # no path configured
    ]
    pb, y, _, beams, cals = run(x, bad)
    assert len(y) == x.size and len(beams) == 6
    assert [c["ok"] for c in cals] == [False] * len(bad)
    assert "unknown beam" in cals[0]["message"] and "k >= 1" in cals[1]["message"]
    assert "1000 samples" in cals[2]["message"] and "invalid" in cals[3]["message"]
    assert "wrong PMT type" in cals[4]["message"]
    assert pb.engine.calibrated_beams == 0 and pb.metrics()["errors"] == len(bad)
    assert beams[2]["status"] != "ok" and beams[2]["beam"] == -1


def test_save_load_reset_by_message_and_corrupt_file_keeps_running(tmp_path):
    path = tmp_path / "cal.json"
    shots = frames_of(4, [0, 0, 1, 1], seed=6)
    msgs = [pdu(0, shots[:2]), pdu(1, shots[2:]), pmt.intern("save"), pmt.intern("reset")]
    pb, _, _, _, cals = run(frames_of(4, [0]), msgs, calibration=str(path))
    assert all(c["ok"] for c in cals) and pb.engine.calibrated_beams == 0
    assert json.loads(path.read_text())["beams"][1]["count"] == 2
    # a new block loads it at start
    pb2, _, _, beams, _ = run(frames_of(4, [1]), calibration=str(path))
    assert pb2.engine.calibrated_beams == 2 and beams[0]["calibrated_beams"] == 2
    # a corrupt file: clear error, previous calibration kept, stream flows
    bad = tmp_path / "bad.json"
    bad.write_text(path.read_text()[:-20])
    pb3, y, _, beams, cals = run(frames_of(4, [1, 2]), [cmd(cmd="load", path=str(bad))], calibration=str(path))
    assert cals[0]["ok"] is False and "not valid JSON" in cals[0]["message"]
    assert np.array_equal(pb3.engine.prototypes(), pb2.engine.prototypes()) and len(beams) == 2


def test_context_tags_reach_results_and_summary(tmp_path):
    tb = gr.top_block()
    src = greatai.protobeam_source(samp_rate=1e6, front_end=1, dwell=2, seed=3)
    head = blocks.head(gr.sizeof_gr_complex, 40 * L)
    pb = greatai.protobeam()
    summ = greatai.result_summary(result_key="protobeam", truth_key="sim_label",
                                  json_path=str(tmp_path / "s.json"))
    dbg = blocks.message_debug()
    tb.connect(src, head, pb, summ)
    tb.msg_connect(pb, "beam", dbg, "store")
    tb.run()
    from gnuradio.greatai.codec import to_python
    m = [to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    assert len(m) == 40 and m[0]["sim_front_end"] == 1 and m[0]["truth"].startswith("B")
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 40 and s["scored"] == 40 and s["accuracy"] > 0.08     # chance: 4 %


def test_source_switches_front_end_and_validates():
    tb = gr.top_block()
    src = greatai.protobeam_source(samp_rate=1e6, front_end=0, switch_to=4, switch_after=0.02, seed=1)
    head = blocks.head(gr.sizeof_gr_complex, 60 * L)
    snk = blocks.vector_sink_c()
    tb.connect(src, head, snk)
    tb.run()
    fes = [(t.offset, pmt.to_long(t.value)) for t in snk.tags() if pmt.symbol_to_string(t.key) == "sim_front_end"]
    assert fes[0][1] == 0 and fes[-1][1] == 4 and len(fes) == 60
    with pytest.raises(ValueError, match="front_end"):
        greatai.protobeam_source(front_end=12)
    with pytest.raises(ValueError, match="batch_frames"):
        greatai.protobeam(batch_frames=0)
    with pytest.raises(ValueError, match="metric"):
        greatai.protobeam(metric="cosine")


# ---------------------------------------------------------------- CLI and the live demo
def greatai_cmd(*args, timeout=120):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "greatai_apps.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_calibrate_from_a_labelled_recording_into_a_file(tmp_path):
    base = tmp_path / "sweep"
    r = greatai_cmd("simulate", str(base), "--beams", "--front-end", "5", "--position", "2", "--shots", "3")
    assert r.returncode == 0, r.stderr
    r = greatai_cmd("calibrate", str(base) + ".sigmf-meta", "--out", str(tmp_path / "cal.json"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["calibrated_beams"] == 24 and out["shots"] == [3] * 24
    eng = ProtoBeamEngine()
    assert eng.load(tmp_path / "cal.json") == 24
    # a recording without labels, and a missing one: clear errors, exit 2
    meta = json.loads((tmp_path / "sweep.sigmf-meta").read_text())
    meta["annotations"] = []
    (tmp_path / "sweep.sigmf-meta").write_text(json.dumps(meta))
    r = greatai_cmd("calibrate", str(base) + ".sigmf-meta", "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "no labelled annotations" in r.stderr
    r = greatai_cmd("calibrate", str(tmp_path / "none.sigmf-meta"), "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_calibrate_live_over_zmq_reaches_a_running_block(tmp_path):
    """greatai calibrate --address PUSHes PDUs to a gr-zeromq PULL source wired to 'calibrate'."""
    import socket
    import time
    from gnuradio import zeromq
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    base = tmp_path / "sweep"
    assert greatai_cmd("simulate", str(base), "--beams", "--front-end", "4", "--shots", "2").returncode == 0
    tb = gr.top_block()
    src = greatai.protobeam_source(samp_rate=1e6, front_end=4)
    thr = blocks.throttle(gr.sizeof_gr_complex, 1e6, True)
    pb = greatai.protobeam(calibration=str(tmp_path / "live.json"))
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    pull = zeromq.pull_msg_source(addr, 100, True)
    tb.connect(src, thr, pb, snk)
    tb.msg_connect(pull, "out", pb, "calibrate")
    tb.start()
    try:
        r = greatai_cmd("calibrate", str(base) + ".sigmf-meta", "--address", addr, "--save", str(tmp_path / "live.json"))
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 10
        while time.time() < deadline and not (tmp_path / "live.json").exists():
            time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    assert pb.engine.calibrated and list(pb.engine.shots()) == [2] * 24
    assert json.loads((tmp_path / "live.json").read_text())["n_beams"] == 24


def test_live_demo_calibrates_over_zmq_and_recovers_accuracy(tmp_path):
    import socket
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    out = tmp_path / "demo.json"
    r = greatai_cmd("demo", "protobeam", "--switch-after", "4", "--frames", "600", "--timeout", "40",
                    "--json-address", f"tcp://127.0.0.1:{ports[0]}", "--control-address",
                    f"tcp://127.0.0.1:{ports[1]}", "--out", str(out), "--quiet", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    before, after, recalibrated = (p["accuracy"] for p in res["phases"])
    assert res["front_end"] == {"start": 0, "after": 4} and res["acks"] == 48
    assert before > after + 20 and recalibrated > after + 20, res


def test_a_failing_work_call_passes_the_iq_and_ends():
    """A bug inside work() must not end the block's thread (the flowgraph would wait for
    ever): the IQ passes on, the failure is counted and the flowgraph ends."""
    from helpers import passthrough_with_broken_step
    x = np.asarray(frames_of(0, [1, 2, 3, 4] * 4), np.complex64).ravel()
    pb = greatai.protobeam(batch_frames=4)
    y = passthrough_with_broken_step(pb, "embed", x, obj=pb.engine)
    np.testing.assert_array_equal(y, x)
    assert pb.metrics()["errors"] >= 1


def test_int8_encoder_runs_in_the_block_like_float(tmp_path):
    """A ProtoBeam model from greatai compress loads through the block's model parameter, no
    other change, and, calibrated with the same shots, labels a recording within the stated
    agreement of float (90 % of frames)."""
    from greatai import compress
    out = tmp_path / "pb_int8"
    compress.compress("protobeam", out, n_calib=1, n_val=4, eval_n=0, progress=False)
    shots = frames_of(4, np.arange(24).repeat(4), seed=2)
    msgs = [pdu(b, shots[b * 4:(b + 1) * 4]) for b in range(24)]
    x = frames_of(4, np.arange(24).repeat(2), seed=3)
    _, y, _, q, cq = run(x, msgs, model=str(out))
    _, _, _, f, _ = run(x, msgs)
    assert np.array_equal(y, x.ravel()) and len(q) == len(f) == 48 and all(c["ok"] for c in cq)
    assert np.mean([a["beam"] == b["beam"] for a, b in zip(q, f)]) >= 0.9
