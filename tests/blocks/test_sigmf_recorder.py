"""greatai.sigmf_recorder in flowgraphs: the classifier's results recorded as SigMF
annotations (from tags or batch messages), replayed as tags, and bad input survived."""
import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from greatai import recording

N = 96 * 1024          # 96 frames of the shipped model


def classify_and_record(tmp_path, name="r", **kw):
    """sim -> head -> amc_classifier (every frame) -> recorder, and a sink beside it."""
    tb = gr.top_block()
    src = greatai.sim_source(samp_rate=1e6, schedule="QPSK:0.02,WBFM:0.02,NOISE:0.02", snr_min=20, snr_max=20,
                             seed=3)
    head = blocks.head(gr.sizeof_gr_complex, N)
    clf = greatai.amc_classifier(batch_frames=16, overload="block", batch_rate=0)
    rec = greatai.sigmf_recorder(path=str(tmp_path / name), samp_rate=1e6, freq=915e6, frame_length=1024,
                                 interval=0.05, **kw)
    snk = blocks.vector_sink_c()
    tb.connect(src, head, clf, rec)
    tb.connect(clf, snk)
    if kw.get("results") == "batch":
        tb.msg_connect(clf, "batch", rec, "batch")
    tb.run()
    return tb, clf, rec, snk


def amc_tags(tags):
    out = [(t.offset, pmt.to_python(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "amc"]
    return [(o, v["label"], v["exit"]) for o, v in sorted(out, key=lambda t: t[0])]


def test_tags_become_one_annotation_per_frame_and_replay_as_tags(tmp_path):
    tb, clf, rec, snk = classify_and_record(tmp_path, annotate="frame")
    want = amc_tags(snk.tags())
    assert len(want) >= 80                                  # the last batch's tags may come too late to tag
    r = recording.open_recording(rec.path)                  # validated by the sigmf library
    np.testing.assert_array_equal(r.samples, np.array(snk.data(), np.complex64))
    got = [(a["core:sample_start"], a["core:label"], a["greatai:exit"]) for a in r.annotations]
    assert got == want
    assert all(a["core:sample_count"] == 1024 and a["greatai:model"] == "amc_ee" for a in r.annotations)   # from the tags
    g = r.metadata["global"]
    assert g["greatai:complete"] and r.metadata["captures"][0]["core:frequency"] == 915e6
    assert rec.metrics()["commits"] >= 2 and rec.error() is None

    replay = greatai.sigmf_source(path=str(rec.path))      # the results come back as amc tags
    out = blocks.vector_sink_c()
    tb2 = gr.top_block()
    tb2.connect(replay, out)
    tb2.run()
    assert amc_tags(out.tags()) == want
    assert not [t for t in out.tags() if pmt.symbol_to_string(t.key) == "sim_label"]   # results are not truth


def test_batch_messages_record_every_frame_as_dwells(tmp_path):
    tb, clf, rec, snk = classify_and_record(tmp_path, results="batch", model="amc_ee")
    r = recording.open_recording(rec.path)
    res = recording.annotation_results(r.annotations)
    assert len(res["start"]) == clf.counts["classified"] == 96        # also those classified at stop
    np.testing.assert_array_equal(res["start"], np.arange(96) * 1024)
    tagged = dict((o, (lab, ex)) for o, lab, ex in amc_tags(snk.tags()))
    agree = [tagged[o] == (lab, ex) for o, lab, ex in zip(res["start"], res["label"], res["exit"]) if o in tagged]
    assert len(agree) >= 80 and np.mean(agree) >= 0.9     # a dwell's majority exit may differ from a frame's
    assert len(r.annotations) < 96 and all(a["greatai:model"] == "amc_ee" for a in r.annotations)
    assert sum(a["greatai:frames"] for a in r.annotations) == 96


def test_an_unwritable_path_is_an_error_and_the_flowgraph_runs_on(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    tb, clf, rec, snk = classify_and_record(tmp_path, name="file/r")
    assert len(snk.data()) == N                            # the rest of the flowgraph got everything
    m = rec.metrics()
    assert m["samples"] == 0 and m["unrecorded"] == N
    assert "cannot record to" in rec.error() and "file/r.sigmf-data" in rec.error()


def test_bad_messages_and_tags_are_counted_not_recorded(tmp_path):
    tb = gr.top_block()
    src = blocks.vector_source_c(np.ones(4096, np.complex64), False,
                                 tags=[gr.tag_utils.python_to_tag((0, pmt.intern("amc"), pmt.intern("junk"))),
                                       gr.tag_utils.python_to_tag((1024, pmt.intern("amc"), pmt.to_pmt(
                                           {"label": "QPSK", "confidence": 0.5, "exit": 1})))])
    rec = greatai.sigmf_recorder(path=str(tmp_path / "b"), samp_rate=1e6, results="tags")
    tb.connect(src, rec)
    for msg in (pmt.intern("junk"), pmt.to_pmt({"offset": 0})):     # handled when it runs, or at its stop
        rec.to_basic_block()._post(pmt.intern("batch"), msg)
    tb.run()
    ann = recording.open_recording(rec.path).annotations
    assert [(a["core:sample_start"], a["core:label"]) for a in ann] == [(1024, "QPSK")]
    m = rec.metrics()
    assert m["bad_results"] == 1 and m["ignored_messages"] == 2      # results='tags' ignores messages

    rec2 = greatai.sigmf_recorder(path=str(tmp_path / "c"), samp_rate=1e6, results="batch")
    tb2 = gr.top_block()
    tb2.connect(blocks.vector_source_c(np.ones(2048, np.complex64), False), rec2)
    for msg in (pmt.intern("junk"), pmt.to_pmt({"offset": 0}),
                pmt.to_pmt({"offset": 1024, "label": "BPSK", "confidence": 0.9, "exit": 2})):
        rec2.to_basic_block()._post(pmt.intern("batch"), msg)
    tb2.run()
    assert [(a["core:sample_start"], a["core:label"]) for a in recording.open_recording(rec2.path).annotations] == \
        [(1024, "BPSK")]
    assert rec2.metrics()["bad_results"] == 2


@pytest.mark.parametrize("kw, what", [(dict(results="x"), "results"), (dict(frame_length=0), "frame_length"),
                                      (dict(path=""), "path"), (dict(annotate="x"), "annotate"),
                                      (dict(samp_rate=0), "samp_rate")])
def test_bad_settings_are_named(tmp_path, kw, what):
    with pytest.raises(ValueError, match=what):
        greatai.sigmf_recorder(**dict(dict(path=str(tmp_path / "r"), samp_rate=1e6), **kw))


def test_a_replay_for_classifying_again_leaves_the_recorded_results_out(tmp_path):
    tb, clf, rec, snk = classify_and_record(tmp_path, annotate="frame")
    src, out = greatai.sigmf_source(path=str(rec.path), result_key=""), blocks.vector_sink_c()
    tb2 = gr.top_block()
    tb2.connect(src, out)                      # (a Python block passed inline would be freed while it runs)
    tb2.run()
    assert len(out.data()) == len(snk.data()) and not amc_tags(out.tags())
