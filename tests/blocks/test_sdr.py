"""SDR sources without hardware: range checks, missing devices with the real drivers, and
the exact configuration calls at each driver's boundary (fake gr-iio / gr-uhd blocks)."""
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from greatai import sdr


@pytest.mark.parametrize("args,msg", [
    (("hackrf", 1e9, 1e6, 0, "manual"), "unknown device type 'hackrf'"),
    (("pluto", 50e6, 1e6, 10, "manual"), r"ADALM-Pluto centre frequency 50 MHz is out of range \(70 MHz to 6 GHz\)"),
    (("pluto", 1e9, 61.5e6, 10, "manual"), r"ADALM-Pluto sample rate 61.5 MHz is out of range \(65.1 kHz to 61.44 MHz\)"),
    (("pluto", 1e9, 60e3, 10, "manual"), "ADALM-Pluto sample rate 60 kHz is out of range"),
    (("pluto", 7e9, 1e6, 10, "manual"), "centre frequency 7 GHz is out of range"),
    (("usrp", 1e9, 1e6, 80, "manual"), r"USRP B2xx gain 80 dB is out of range \(0 dB to 76 dB\)"),
    (("usrp", 1e9, 1e6, 0, "slow_attack"), "gain mode 'slow_attack' is not valid for usrp"),
    (("file", 0, 1e6, 0, "manual"), "needs the recording's path"),
])
def test_settings_out_of_range_are_clear_errors(args, msg):
    with pytest.raises(ValueError, match=msg):
        sdr.check(*args)
    with pytest.raises(ValueError, match=msg):
        greatai.sdr_source(device=args[0], freq=args[1], samp_rate=args[2], gain=args[3], gain_mode=args[4])


def test_in_range_settings_pass():
    sdr.check("pluto", 915e6, 65.1e3, 71, "manual")
    sdr.check("usrp", 2.4e9, 61.44e6, 0, "agc", bandwidth=20e6)


@pytest.mark.parametrize("device,address", [("pluto", "usb:"), ("usrp", "type=b200")])
def test_missing_device_fails_fast_naming_what_was_tried(device, address):
    t = time.time()
    with pytest.raises(ValueError, match=f"no .* {address!r}"):
        greatai.sdr_source(device=device, freq=915e6, samp_rate=2e6, address=address)
    assert time.time() - t < 30


class FakeDriver(gr.sync_block):
    """Stands in for a driver block: records every call, streams a ramp, optional tags."""

    def __init__(self, calls, tags=()):
        gr.sync_block.__init__(self, name="fake_driver", in_sig=None, out_sig=[np.complex64])
        self.calls, self.tags = calls, list(tags)

    def work(self, input_items, output_items):
        out = output_items[0]
        w = self.nitems_written(0)
        out[:] = np.arange(w, w + len(out))
        for off, key, val in self.tags:
            if w <= off < w + len(out):
                self.add_item_tag(0, off, pmt.intern(key), val)
        return len(out)



DRIVER_SETTERS = ("set_len_tag_key", "set_frequency", "set_samplerate", "set_gain_mode", "set_gain",
                  "set_quadrature", "set_rfdc", "set_bbdc", "set_filter_params",                 # gr-iio
                  "set_samp_rate", "set_center_freq", "set_rx_agc", "set_bandwidth")              # gr-uhd
for _name in DRIVER_SETTERS:      # explicit methods: gr's gateway relies on __getattr__ itself
    setattr(FakeDriver, _name, (lambda n: lambda self, *a: self.calls.append((n, *a)))(_name))


def run_head(src, n=20000):
    tb = gr.top_block()
    head = blocks.head(gr.sizeof_gr_complex, n)
    snk = blocks.vector_sink_c()
    tb.connect(src, head, snk)
    tb.run()
    return np.array(snk.data()), [(t.offset, pmt.symbol_to_string(t.key), t.value) for t in snk.tags()]


def test_pluto_configuration_calls(monkeypatch):
    from gnuradio import iio
    calls = []

    def fake(uri, ch_en, buffer_size):
        calls.append(("make", uri, list(ch_en), buffer_size))
        return FakeDriver(calls)
    monkeypatch.setattr(iio, "fmcomms2_source_fc32", fake)
    src = greatai.sdr_source(device="pluto", freq=915e6, samp_rate=2.5e6, gain=30, gain_mode="manual",
                             address="usb:1.2.5", buffer_size=16384)
    assert calls == [("make", "usb:1.2.5", [True, True, False, False], 16384), ("set_len_tag_key", ""),
                     ("set_frequency", 915000000), ("set_samplerate", 2500000), ("set_gain_mode", 0, "manual"),
                     ("set_gain", 0, 30.0), ("set_quadrature", True), ("set_rfdc", True), ("set_bbdc", True),
                     ("set_filter_params", "Auto", "", 0, 0)]
    x, tags = run_head(src)
    assert len(x) == 20000 and x[5] == 5
    keys = {k: pmt.to_python(v) for o, k, v in tags if o == 0}
    assert keys["rx_freq"] == 915e6 and keys["rx_rate"] == 2.5e6 and "rx_time" in keys
    src.set_freq(2.4e9)
    assert calls[-1] == ("set_frequency", 2400000000)
    with pytest.raises(ValueError, match="out of range"):
        src.set_freq(10e9)
    calls.clear()
    greatai.sdr_source(device="pluto", freq=915e6, samp_rate=2.5e6, gain_mode="fast_attack", address="usb:")
    assert ("set_gain_mode", 0, "fast_attack") in calls and not [c for c in calls if c[0] == "set_gain"]


def test_usrp_configuration_calls_and_overflow_count(monkeypatch):
    from gnuradio import uhd
    calls = []

    def fake(args, stream_args):
        calls.append(("make", args, stream_args.cpu_format, list(stream_args.channels)))
        t0 = pmt.make_tuple(pmt.from_uint64(100), pmt.from_double(0.0))
        return FakeDriver(calls, [(0, "rx_time", t0), (0, "rx_rate", pmt.from_double(4e6)),
                                  (5000, "rx_time", t0), (12000, "rx_time", t0)])   # two overflows
    monkeypatch.setattr(uhd, "usrp_source", fake)
    src = greatai.sdr_source(device="usrp", freq=2.4e9, samp_rate=4e6, gain=50, address="type=b200,serial=F00",
                             bandwidth=5e6)
    assert calls == [("make", "type=b200,serial=F00", "fc32", [0]), ("set_samp_rate", 4e6),
                     ("set_center_freq", 2.4e9, 0), ("set_gain", 50.0, 0), ("set_bandwidth", 5e6, 0)]
    x, tags = run_head(src)
    assert src.metrics()["overflows"] == 2
    assert len([t for t in tags if t[1] == "rx_time" and t[0] == 0]) == 1     # UHD's own, not a second one
    calls.clear()
    greatai.sdr_source(device="usrp", freq=2.4e9, samp_rate=4e6, gain_mode="agc")
    assert ("set_rx_agc", True, 0) in calls and calls[0][1] == "type=b200"


def test_sim_and_file_devices(tmp_path):
    x, tags = run_head(greatai.sdr_source(device="sim", samp_rate=2e6), 4000)
    keys = {k for o, k, v in tags}
    assert {"rx_freq", "rx_rate", "rx_time", "sim_label"} <= keys and len(x) == 4000
    from greatai import recording, sim
    y, ann = sim.record("QPSK:0.001", 1e6, 0.003)
    recording.write_sigmf(tmp_path / "r", y, 1e6, ann)
    x, tags = run_head(greatai.sdr_source(device="file", samp_rate=1e6, address=str(tmp_path / "r.sigmf-meta")), 4500)
    np.testing.assert_array_equal(x[:3000], y)                   # replayed, then looping
    np.testing.assert_array_equal(x[3000:4500], y[:1500])
