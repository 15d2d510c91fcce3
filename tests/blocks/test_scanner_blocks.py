"""The wideband scanner in flowgraphs: the simulated band's truth tags, the scanner's
detection, extraction and per-emitter classification scored against that truth, its
load controls, and bad input (settings, spectra, foreign messages)."""
import json
import os

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr, greatai
from gnuradio.greatai import codec

from greatai import scanner, wideband

FS = 4e6
# three emitters wide enough to be classified many times a second at this rate
BAND = [{"label": "QPSK", "center_hz": -1.2e6, "bandwidth_hz": 200e3, "snr_db": 18.0},
        {"label": "WBFM", "center_hz": 0.4e6, "bandwidth_hz": 150e3, "snr_db": 15.0},
        {"label": "GFSK", "center_hz": 1.3e6, "bandwidth_hz": 120e3, "snr_db": 18.0,
         "on_s": 0.3, "off_s": 0.2, "offset_s": 0.1}]


def run_scanner(seconds, **kw):
    src = greatai.wideband_source(FS, json.dumps(BAND), 1.0, 3)
    n = int(seconds * FS)
    scan = greatai.emitter_scanner(FS, 0.0, overload="block", **kw)
    store, dwells = blocks.message_debug(), blocks.message_debug()
    keep = blocks.keep_one_in_n(gr.sizeof_gr_complex, 1024)       # tags pass, scaled to its output
    tags = blocks.vector_sink_c()
    tb = gr.top_block()
    head = blocks.head(gr.sizeof_gr_complex, n)
    tb.connect(src, head, scan)
    tb.connect(head, keep, tags)
    tb.msg_connect(scan, "emitters", store, "store")
    tb.msg_connect(scan, "dwell", dwells, "store")
    tb.run()
    reports = [codec.to_python(store.get_message(i)) for i in range(store.num_messages())]
    return src, scan, reports, [codec.to_python(t.value) for t in tags.tags() if pmt.symbol_to_string(t.key) == "sim_emitter"], dwells.num_messages()


@pytest.fixture(scope="module")
def scanned():
    return run_scanner(2.0)


def test_the_wideband_source_tags_every_burst_with_its_truth(scanned):
    src, _, _, tags, _ = scanned
    truth = src.truth(2.0)
    # per 1 s period: the two always-on emitters and the keyed one's two bursts
    assert len(tags) == len(truth) == 2 * (2 + 2)
    assert {t["label"] for t in tags} == {"QPSK", "WBFM", "GFSK"}
    gfsk = sorted(t["start"] for t in tags if t["label"] == "GFSK")
    assert np.allclose(gfsk, [0.1, 0.6, 1.1, 1.6], atol=1e-6)
    assert all(0 < t["bandwidth_hz"] < 400e3 for t in tags) and tags == truth


def test_the_scanner_finds_and_classifies_every_emitter(scanned):
    src, scan, reports, _, n_dwells = scanned
    assert n_dwells >= 95                                 # 20 ms dwells over 2 s
    need = {"id", "center_hz", "bandwidth_hz", "snr_db", "start", "stop", "slot", "label", "confidence", "exit",
            "frames"}
    assert reports and all(need <= set(r) for r in reports)
    tracks = scanner.tracks_from_reports(reports)
    s = wideband.score(tracks, src.truth(2.0))
    assert s["recall_pct"] == 100.0 and s["precision_pct"] == 100.0, s
    for t in tracks:                                      # each found where it is, at its SNR
        e = next(e for e in BAND if abs(e["center_hz"] - t["center_hz"]) < 50e3)
        assert 5 < t["snr_db"] < 30 and t["label"], t
    always_on = [t for t in tracks if t["start"] == 0.0]
    assert sorted(t["label"] for t in always_on) == ["QPSK", "WBFM"]
    assert all(t["frames"] >= 20 for t in always_on)      # classified many times over the run
    m = scan.metrics()
    assert m["classified"] > 200 and m["unserved"] == 0 and m["invalid"] == 0 and m["skipped"] == 0
    assert m["retunes"] >= 3 and m["stale_frames"] >= 1          # frames from before a retune never count
    finals = [r for r in reports if r.get("final")]
    assert finals and all(r["slot"] == -1 for r in finals)   # the keyed emitter's bursts end


def test_chains_classify_narrow_emitters_more_often():
    assert scanner.chain_every_n(4, 1.0) == 4 and scanner.chain_every_n(4, 0.5) == 2
    assert scanner.chain_every_n(4, 0.05) == 1 and scanner.chain_every_n(1, 1.0) == 1


def test_load_controls_change_while_running():
    scan = greatai.emitter_scanner(FS, 0.0, slots=2, every_n=8)
    scan.set_every_n(2)
    assert [g.every_n for g in scan.detector.frames.grids] == [2, 2]
    scan.set_threshold_db(20.0)
    assert scan.detector.scan.detect_args["threshold_db"] == 20.0
    with pytest.raises(ValueError, match="every_n"):
        scan.set_every_n(0)


@pytest.mark.parametrize("kw, match", [({"slots": 0}, "at least 1 extraction chain"),
                                       ({"decimation": 10_000}, "decimation"),
                                       ({"oversample": 1.0}, "oversample"),
                                       ({"samp_rate": 0.0}, "samp_rate"),
                                       ({"fft_every": 3}, "fft_every")])
def test_bad_settings_are_refused_with_the_reason(kw, match):
    args = dict(samp_rate=FS, center_freq=0.0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        greatai.emitter_scanner(**args)


@pytest.mark.parametrize("emitters, match", [("[{", "not a JSON list"), ("[1, 2]", "list of dicts"),
                                             ('[{"label": "QPSK"}]', "unknown or missing field"),
                                             ('[{"label": "CHIRP", "center_hz": 0, "bandwidth_hz": 1e5}]',
                                              "not a signal class"),
                                             ('[{"label": "QPSK", "center_hz": 1.9e6, "bandwidth_hz": 5e5}]',
                                              "does not fit")])
def test_bad_band_descriptions_are_refused(emitters, match):
    with pytest.raises(ValueError, match=match):
        greatai.wideband_source(FS, emitters, 0.05, 0)


def test_nan_spectra_and_nan_samples_are_counted_not_raised():
    """A NaN-riddled spectrum stream and a chain of NaN samples: the detector reads the
    bad bins as the floor, never labels the bad frames, and goes on (its dwells are
    still published)."""
    from gnuradio.greatai.scan_detector import scan_detector
    from greatai.amc.engine import EarlyExitEngine
    det = scan_detector(FS, 64, 64 * 8, 4, 1, FS / 8, EarlyExitEngine(), lambda *a: 0)
    x = np.full((40, 64), -30.0, np.float32)
    x[::3, 10:20] = np.nan
    x[:, 30:36] = 0.0
    iq = np.full(8192, np.nan, np.complex64)              # the chain's samples: NaN, never classified as a class
    src, chain = blocks.vector_source_f(x.ravel().tolist(), False, 64), blocks.vector_source_c(iq.tolist())
    dw = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(src, (det, 0))
    tb.connect(chain, (det, 1))
    tb.msg_connect(det, "dwell", dw, "store")
    tb.run()
    assert dw.num_messages() == 10
    last = codec.to_python(dw.get_message(9))
    assert len(last["emitters"]) == 1 and abs(last["emitters"][0]["center_hz"] - (33 - 32) * FS / 64) < FS / 32
    assert det.metrics()["classified"] == 0                # NaN frames are never given a class


def test_the_scanner_display_draws_boxes_for_reports():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtWidgets
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
    d = greatai.scanner_display(FS, 2.4e9, 1024, 8, 512)
    p = d.panel
    p.push_spectrum(np.random.default_rng(0).normal(-40, 1, (50, 512)))
    d._handle(codec.to_pmt({"id": 3, "center_hz": 2.4e9 + 1e6, "bandwidth_hz": 2e5, "snr_db": 15.0, "start": 0.0,
                            "stop": 0.05, "label": "QPSK", "confidence": 0.9, "exit": 1}))
    d._handle(codec.to_pmt({"id": 4, "center_hz": 2.4e9 - 1e6, "bandwidth_hz": 1e5, "snr_db": 9.0, "start": 0.01,
                            "stop": 0.05, "label": "", "confidence": 0.0, "exit": 0}))
    d._handle(pmt.intern("not a report"))
    p.refresh()
    shown = [(b.rect(), t.textItem.toPlainText()) for b, t in p.boxes if b.isVisible()]
    assert len(shown) == 2 and p.ignored == 1
    assert any("QPSK 0.90 e1" == text for _, text in shown) and any(text.startswith("#4") for _, text in shown)
    r = next(r for r, text in shown if text.startswith("QPSK"))
    assert abs(r.x() - 2400.9) < 1e-6 and abs(r.width() - 0.2) < 1e-9          # MHz
    assert p.p.getAxis("bottom").labelText == "frequency (MHz)"
    with pytest.raises(ValueError, match="multiple of columns"):
        greatai.scanner_display(FS, 0.0, 1000, 8, 512)
