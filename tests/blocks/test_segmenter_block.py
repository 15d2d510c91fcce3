"""The spectrogram_segmenter block: labels, regions, the shared backbone with the
forecaster, SigMF annotations from its regions, bad input."""
import numpy as np
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from gnuradio.greatai.codec import to_python
from greatai.contract import ModelError
from helpers import stft_vectors


def run(db, forecaster=False, **kw):
    tb = gr.top_block()
    src = blocks.vector_source_f(db.ravel().tolist(), False, 1024)
    seg = greatai.spectrogram_segmenter(samp_rate=4e6, **kw)
    snk = blocks.vector_sink_f(64)
    dbg = blocks.message_debug()
    tb.connect(src, seg, snk)
    tb.msg_connect(seg, "segments", dbg, "store")
    keep = [seg]
    if forecaster:
        fc = greatai.spectrogram_forecaster(samp_rate=4e6, every=kw.get("every", 8), share=kw.get("share", ""),
                                            truth_key="")
        tb.connect(src, fc, blocks.null_sink(8 * 64 * 4))
        keep.append(fc)
    tb.run()
    return seg, np.array(snk.data()).reshape(-1, 64), [to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]


def test_labels_every_frame_and_sends_regions_in_hz():
    db, occ = stft_vectors(6, 200)
    seg, out, msgs = run(db, every=8, center_freq=1e9)
    assert out.shape == (200, 64)
    s = seg.engine.steps
    assert np.all(out[:s - 8] == -1)                  # the frames before the first whole window
    live = out[s:]
    assert set(np.unique(live)) <= set(range(7)) and (live > 0).any()
    # occupied cells are mostly labelled as an emitter, free ones mostly as noise
    assert np.mean(live[occ[s:]] > 0) > 0.6 and np.mean(live[~occ[s:]] == 0) > 0.8
    # every region closed while the stream ran arrived (those still open at its end go out from stop(),
    # when the receiving block may have stopped already)
    met = seg.metrics()
    assert msgs and met["segments"] - met["flushed_at_stop"] <= len(msgs) <= met["segments"]
    m = msgs[0]
    assert m["label"] in seg.engine.classes[1:] and m["stop_s"] > m["start_s"] >= 0
    assert -2e6 <= m["lower_hz"] < m["upper_hz"] <= 2e6 and m["center_freq"] == 1e9
    assert m["count"] == (m["frames"][1] - m["frames"][0] + 1) * 1024 * 16


def test_shared_backbone_with_the_forecaster_runs_each_window_once():
    db, _ = stft_vectors(8, 160)
    seg, _, _ = run(db, forecaster=True, every=8, share="block-test")
    m = seg.metrics()
    assert m["backbone_runs"] == 160 // 8 and m["backbone_hits"] == 160 // 8, m


def test_regions_become_sigmf_annotations_with_band_edges(tmp_path):
    from greatai import recording
    db, _ = stft_vectors(9, 120)
    tb = gr.top_block()
    vsrc = blocks.vector_source_f(db.ravel().tolist(), False, 1024)
    seg = greatai.spectrogram_segmenter(samp_rate=4e6, every=8)
    iq = blocks.vector_source_c([0j] * (120 * 1024 * 16), False)
    rec = greatai.sigmf_recorder(str(tmp_path / "band"), samp_rate=4e6, freq=2.4e9, results="batch")
    tb.connect(vsrc, seg, blocks.null_sink(64 * 4))
    tb.connect(iq, rec)
    tb.msg_connect(seg, "segments", rec, "batch")
    tb.run()
    r = recording.open_recording(tmp_path / "band.sigmf-meta")
    anns = r.metadata["annotations"]
    assert anns and seg.metrics()["segments"] >= len(anns) > 0
    a = anns[0]
    assert a["core:label"] in seg.engine.classes and 2.398e9 <= a["core:freq_lower_edge"] < a["core:freq_upper_edge"]


def test_bad_input(tmp_path):
    db, _ = stft_vectors(7, 80, nan_frames=[40])
    seg, out, _ = run(db, every=4)
    assert len(out) == 80 and np.all(out[40:44] == -1)                 # the window holding the NaN frame
    assert seg.metrics()["skipped"] >= 1
    with pytest.raises(ValueError, match="does not match the model"):
        greatai.spectrogram_segmenter(fft_size=1000)
    with pytest.raises(ModelError, match="labels"):
        greatai.spectrogram_segmenter(labels="noise,radar")
    with pytest.raises(ModelError, match="not found|no model"):
        greatai.spectrogram_segmenter(model=str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="every"):
        greatai.spectrogram_segmenter(every=100)
    assert greatai.spectrogram_segmenter.output_size("") == 64
