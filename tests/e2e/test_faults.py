"""Faults a live radio meets (issue 12), each survived: a source that ends or whose driver
raises mid-stream, a subscriber that comes and goes 1000 times, and floods of random and
malformed PMTs into every message port of every block while the stream runs at full rate.
In each case nothing crashes, nothing grows without bound, every refusal is counted, and
the stream keeps flowing.  (The full disk is in test_capture.py.)"""
import os
import time

import numpy as np
import pmt
import pytest
import zmq
from gnuradio import blocks, gr

from gnuradio import greatai
from greatai import procmem, sim

L = 1024


def rss_mb():
    return procmem.memory_mb()["rss"]


class FakeRadio(gr.sync_block):
    """A driver at its boundary: simulated IQ, then after ``n`` samples either the end of
    the stream (a file ending) or an exception (a radio unplugged)."""

    def __init__(self, n, fail=False):
        gr.sync_block.__init__(self, name="fake_radio", in_sig=None, out_sig=[np.complex64])
        self.sim = sim.StreamSimulator("QPSK:0.01,WBFM:0.01,NOISE:0.01", 1e6, (15, 25), seed=2)
        self.n, self.fail = int(n), bool(fail)

    def work(self, input_items, output_items):
        w = self.nitems_written(0)
        if w >= self.n:
            if self.fail:
                raise RuntimeError("libiio: device disconnected (-19)")
            return -1
        k = min(len(output_items[0]), self.n - w)
        output_items[0][:k] = self.sim.read(k)[0]
        return k


def classifier_chain(tb, src, rate=4e6):
    """src -> throttle -> amc_classifier (defaults) -> null, batch -> zmq_result_sink."""
    thr = blocks.throttle(gr.sizeof_gr_complex, rate, True)
    amc = greatai.amc_classifier()
    sink = greatai.zmq_result_sink("tcp://127.0.0.1:*")
    tb.connect(src, thr, amc, blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(amc, "batch", sink, "in")
    tb.__dict__.setdefault("keep", []).extend([src, amc, sink])    # Python blocks must stay referenced
    return amc, sink


def produced(amc):
    m = amc.metrics()
    return m["classified"] + m["invalid"]


def test_a_source_that_ends_mid_stream_ends_the_flowgraph_with_every_result_published():
    tb = gr.top_block()
    n = 300 * L + 100                             # not a whole number of frames
    amc, sink = classifier_chain(tb, FakeRadio(n))
    tb.run()                                      # returns: the end of the stream ends the flowgraph
    m = amc.metrics()
    assert m["frames"] == 300 and m["errors"] == 0
    assert sink.metrics()["frames_sent"] == produced(amc) == m["frames"] - m["skipped"]


def test_a_radio_unplugged_mid_stream_is_reported_and_the_rest_keeps_running():
    """Two radios in one flowgraph; one driver raises.  Its branch ends with its results
    published; the other branch goes on classifying."""
    tb = gr.top_block(catch_exceptions=True)
    amc_a, sink_a = classifier_chain(tb, FakeRadio(200 * L, fail=True))
    amc_b, sink_b = classifier_chain(tb, greatai.sim_source(samp_rate=2e6), rate=2e6)
    tb.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and amc_a.metrics()["frames"] < 200:
        time.sleep(0.2)
    time.sleep(1.0)
    b0 = amc_b.metrics()["frames"]
    time.sleep(2.0)
    b1 = amc_b.metrics()["frames"]
    tb.stop()
    tb.wait()
    assert amc_a.metrics()["frames"] == 200
    assert b1 - b0 > 1000                          # the other radio's stream kept flowing
    assert sink_a.metrics()["frames_sent"] == produced(amc_a)
    assert sink_b.metrics()["frames_sent"] == produced(amc_b)


def test_a_subscriber_connecting_and_leaving_1000_times_changes_nothing():
    tb = gr.top_block()
    amc, sink = classifier_chain(tb, greatai.sim_source(samp_rate=4e6), rate=4e6)
    tb.start()
    time.sleep(5.0)                                # the buffers' first fill (RSS rises as pages are touched)
    ctx = zmq.Context.instance()
    got = 0
    f0 = amc.metrics()["frames"]
    for i in range(1000):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.setsockopt(zmq.LINGER, 0)
        s.connect(sink.address())
        if i % 50 == 0 and s.poll(500):            # now and then, stay for a message
            s.recv()
            got += 1
        s.close(0)
        if i == 499:
            rss0 = rss_mb()                        # past the buffers' first fill
    f1 = amc.metrics()["frames"]
    time.sleep(0.5)
    tb.stop()
    tb.wait()
    c = sink.metrics()
    assert got >= 5 and f1 > f0                    # results reached subscribers; the stream flowed
    assert c["failed"] == 0 and c["dropped"] == 0 and c["frames_sent"] == produced(amc)
    assert rss_mb() - rss0 < 20


def random_pmt(rng, depth=0):
    """Any PMT at all: scalars, symbols, pairs, dicts with random keys, every vector type
    (some long), PDUs with the wrong data, commands with absurd arguments, NaN and Inf."""
    k = int(rng.integers(0, 16 if depth < 2 else 8))
    if k == 0:
        return pmt.PMT_NIL
    if k == 1:
        return pmt.from_long(int(rng.integers(-2 ** 62, 2 ** 62)))
    if k == 2:
        return pmt.from_double(float(rng.choice([np.nan, np.inf, -np.inf, 1e308, -0.0, rng.normal()])))
    if k == 3:
        return pmt.intern(rng.choice(["capture", "reset", "save", "load", "", "\x00", "B99", "x" * 300]))
    if k == 4:
        return pmt.from_bool(bool(rng.integers(0, 2)))
    if k == 5:
        return pmt.from_complex(complex(rng.normal(), rng.normal()))
    if k == 6:
        n = int(rng.choice([0, 1, 3, 1023, 1024, 4096, 100000]))
        kind = rng.choice(["c32", "f32", "u8", "s32", "f64"])
        data = rng.normal(size=n)
        if kind == "c32":
            return pmt.init_c32vector(n, (data + 1j * data).astype(np.complex64))
        if kind == "f32":
            return pmt.init_f32vector(n, data.astype(np.float32))
        if kind == "f64":
            return pmt.init_f64vector(n, data)
        if kind == "u8":
            return pmt.init_u8vector(n, (np.abs(data) * 10).astype(np.uint8).tolist())
        return pmt.init_s32vector(n, (data * 100).astype(np.int32).tolist())
    if k == 7:
        return pmt.cons(random_pmt(rng, depth + 1), random_pmt(rng, depth + 1))
    if k in (8, 9):                                # a dict, often a command with absurd arguments
        d = pmt.make_dict()
        if rng.integers(0, 2):
            d = pmt.dict_add(d, pmt.intern("cmd"), pmt.intern(str(rng.choice(["capture", "reset", "save", "load",
                                                                               "fly"]))))
        for key in rng.choice(["beam", "k", "replace", "path", "label", "offset", "probs", "frames", "format",
                               "per_frame", "channel_hz", "status", "probabilities"], int(rng.integers(0, 5))):
            v = random_pmt(rng, depth + 1)
            if key == "path":                          # save/load: never a file that could be written
                v = pmt.intern(f"/nonexistent/greatai/cal{int(rng.integers(0, 9))}.json")
            d = pmt.dict_add(d, pmt.intern(str(key)), v)
        return d
    if k == 10:                                    # a PDU, usually wrong
        meta = pmt.dict_add(pmt.make_dict(), pmt.intern("beam"), random_pmt(rng, depth + 1))
        n = int(rng.choice([0, 5, 1024, 2048]))
        return pmt.cons(meta, pmt.init_c32vector(n, (rng.normal(size=n) * np.nan ** int(rng.integers(0, 2)))
                                                 .astype(np.complex64)))
    if k == 11:
        v = pmt.make_vector(int(rng.integers(0, 4)), pmt.PMT_NIL)
        for i in range(pmt.length(v)):
            pmt.vector_set(v, i, random_pmt(rng, depth + 1))
        return v
    return pmt.from_uint64(int(rng.integers(0, 2 ** 63)))


def flood(post, n=10000, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        post(random_pmt(rng))


def _stream_keeps_flowing(tb, counter, post, wait=None):
    """Start, flood ``post`` with 10 000 random PMTs while the stream runs, check the
    stream advanced during and after the flood; returns the RSS growth."""
    tb.start()
    time.sleep(0.5)
    rss0, c0 = rss_mb(), counter()
    flood(post)
    if wait:
        wait()
    c1 = counter()
    time.sleep(1.0)
    c2 = counter()
    tb.stop()
    tb.wait()
    assert c1 > c0 and c2 > c1, (c0, c1, c2)
    return rss_mb() - rss0


def test_malformed_pmts_into_protobeam_calibrate_at_full_rate():
    tb = gr.top_block()
    src = greatai.protobeam_source(samp_rate=10e6)
    pb = greatai.protobeam()
    sink = greatai.zmq_result_sink("tcp://127.0.0.1:*", queue=1000)
    tb.connect(src, pb, blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(pb, "calibration", sink, "in")
    tb.msg_connect(pb, "batch", sink, "in")
    port = pmt.intern("calibrate")

    def wait():                                    # until every request has been answered
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pb.calib.counts["requests"] < 10000:
            time.sleep(0.1)
    growth = _stream_keeps_flowing(tb, lambda: pb.metrics()["frames"],
                                   lambda m: pb.to_basic_block()._post(port, m), wait)
    c = pb.calib.counts
    assert c["requests"] == 10000 and c["errors"] > 5000          # each one answered; refusals counted
    assert growth < 100
    assert sink.metrics()["failed"] == 0


def test_malformed_pmts_into_the_zmq_result_sink_at_full_rate():
    tb = gr.top_block()
    x = sim.StreamSimulator("QPSK:0.01,WBFM:0.01", 1e6, (20, 20), seed=1).read(L * 256)[0]
    src = blocks.vector_source_c(x, True)
    amc = greatai.amc_classifier(overload="block")
    sink = greatai.zmq_result_sink("tcp://127.0.0.1:*", queue=2000)
    tb.connect(src, amc, blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(amc, "batch", sink, "in")
    port = pmt.intern("in")
    growth = _stream_keeps_flowing(tb, lambda: amc.metrics()["frames"], lambda m: sink.to_basic_block()._post(port, m),
                                   lambda: time.sleep(2.0))
    c = sink.metrics()
    assert c["sent"] + c["dropped"] + c["failed"] + c["queued"] >= 10000       # every message accounted for
    assert growth < 150


@pytest.fixture(scope="module")
def qapp():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtWidgets
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


@pytest.mark.parametrize("display,port", [("amc_display", "in"), ("protobeam_display", "in"),
                                          ("forecast_display", "forecast")])
def test_malformed_pmts_into_every_display_port_at_full_rate(qapp, display, port):
    """Random PMTs and real results mixed, drawn on the GUI thread: the panel counts what it
    cannot read or draw and keeps drawing."""
    tb = gr.top_block()
    disp = getattr(greatai, display)(quit_at_end=False)
    if display == "forecast_display":
        src = greatai.band_source()
        stft = greatai.stft(fft_size=1024, hop=1024, window="rect", average=16)
        fc = greatai.spectrogram_forecaster(samp_rate=20e6)
        tb.connect(src, stft, fc, blocks.null_sink(gr.sizeof_float * fc.engine.horizons * fc.engine.channels))
        tb.connect(stft, disp)
        tb.msg_connect(fc, "forecast", disp, "forecast")
        counter = lambda: fc.counts["forecasts"]            # noqa: E731
    else:
        src = greatai.sim_source(samp_rate=4e6) if display == "amc_display" else greatai.protobeam_source(samp_rate=4e6)
        model = greatai.amc_classifier(overload="block") if display == "amc_display" else greatai.protobeam()
        tb.connect(src, model, blocks.null_sink(gr.sizeof_gr_complex))
        tb.msg_connect(model, "batch", disp, "in")
        counter = lambda: model.metrics()["frames"]          # noqa: E731
    key = pmt.intern(port)
    posted = []

    def post(m):                                         # the GUI thread's redraws, in between
        disp.to_basic_block()._post(key, m)
        posted.append(1)
        if len(posted) % 500 == 0:
            qapp.processEvents()
            disp.panel._tick()
    growth = _stream_keeps_flowing(tb, counter, post)
    panel = disp.panel
    for _ in range(5):
        panel._tick()
    assert panel.ignored + panel.errors > 0 and panel.redraws > 0
    assert growth < 150
