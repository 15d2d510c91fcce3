from gnuradio import blocks, gr

from greatai import sdr

from .rx_tagger import rx_tagger


class sdr_source(gr.hier_block2):
    """One source for every radio: ADALM-Pluto (gr-iio), Ettus USRP (gr-uhd), the built-in
    simulated radio, or a recording, chosen by ``device``.

    The stream carries ``rx_freq``, ``rx_rate`` and ``rx_time`` tags.  Receive overflows
    are counted in ``metrics()`` (UHD reports them; libiio/gr-iio does not report Pluto
    overflows).  Settings are checked against the device's real range before any driver
    is opened, and a missing device is a clear error naming the URI or args tried.

    Args:
        device: 'sim', 'pluto', 'usrp' or 'file'.
        freq: centre frequency (Hz).
        samp_rate: sample rate (S/s).
        gain: gain in dB (manual gain mode).
        gain_mode: 'manual', or for Pluto 'slow_attack' / 'fast_attack' / 'hybrid', for USRP 'agc'.
        bandwidth: analog bandwidth in Hz (0: follow the sample rate).
        address: Pluto URI (ip:192.168.2.1, usb:1.2.5), UHD device args (type=b200,serial=...),
            or the recording path for 'file' ('' = the device's default).
        schedule: emitter schedule for 'sim' (see greatai.sim_source).
        buffer_size: samples per libiio buffer (Pluto).
    """

    def __init__(self, device="sim", freq=2.4e9, samp_rate=1e6, gain=40.0, gain_mode="manual", bandwidth=0.0,
                 address="", schedule="BPSK:0.2,QPSK:0.2,QAM16:0.2,WBFM:0.2,NOISE:0.2", buffer_size=32768):
        gr.hier_block2.__init__(self, "greatai_sdr_source", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        device = str(device).strip().lower()
        sdr.check(device, float(freq), float(samp_rate), float(gain), str(gain_mode), float(bandwidth), address)
        self.device = device
        self.address = str(address).strip() or sdr.DEFAULT_ADDRESS[device]
        make = getattr(self, f"_make_{device}")
        self.src = make(float(freq), float(samp_rate), float(gain), str(gain_mode), float(bandwidth),
                        schedule, int(buffer_size))
        self.tagger = rx_tagger(freq, samp_rate)
        self.connect(self.src, self.tagger, self)

    def _make_pluto(self, freq, rate, gain, mode, bw, schedule, buffer_size):
        from gnuradio import iio
        try:
            src = iio.fmcomms2_source_fc32(self.address, [True, True, False, False], buffer_size)
        except Exception as e:
            raise ValueError(f"no ADALM-Pluto found at URI {self.address!r} ({e}); check the cable or network, "
                             "or give the right URI (ip:192.168.2.1, usb:...)") from None
        src.set_len_tag_key("")
        src.set_frequency(int(freq))
        src.set_samplerate(int(rate))
        src.set_gain_mode(0, mode)
        if mode == "manual":
            src.set_gain(0, gain)
        src.set_quadrature(True)
        src.set_rfdc(True)
        src.set_bbdc(True)
        src.set_filter_params("Auto", "", 0, 0)     # gr-iio 3.10 sizes the analog filter from the rate
        return src

    def _make_usrp(self, freq, rate, gain, mode, bw, schedule, buffer_size):
        from gnuradio import uhd
        try:
            src = uhd.usrp_source(self.address, uhd.stream_args(cpu_format="fc32", channels=[0]))
        except Exception as e:
            msg = " ".join(str(e).split())
            raise ValueError(f"no USRP found with device args {self.address!r} ({msg}); check the USB/network "
                             "connection or the args") from None
        src.set_samp_rate(rate)
        src.set_center_freq(freq, 0)
        if mode == "agc":
            src.set_rx_agc(True, 0)
        else:
            src.set_gain(gain, 0)
        if bw:
            src.set_bandwidth(bw, 0)
        return src

    def _make_sim(self, freq, rate, gain, mode, bw, schedule, buffer_size):
        from .sim_source import sim_source
        self._sim = sim_source(samp_rate=rate, schedule=schedule, snr_min=10, snr_max=20, shuffle=True)
        thr = blocks.throttle(gr.sizeof_gr_complex, rate, True)
        self.connect(self._sim, thr)
        return thr

    def _make_file(self, freq, rate, gain, mode, bw, schedule, buffer_size):
        from .sigmf_source import sigmf_source
        # a stand-in for a radio: the truth tags, not the results a recorder wrote
        return sigmf_source(path=self.address, realtime=True, repeat=True, samp_rate=rate, result_key="")

    def set_freq(self, freq):
        sdr.check_value(self.device, "freq", float(freq))
        if self.device == "pluto":
            self.src.set_frequency(int(freq))
        elif self.device == "usrp":
            self.src.set_center_freq(float(freq), 0)
        self.tagger.set_freq(freq)

    def set_gain(self, gain):
        sdr.check_value(self.device, "gain", float(gain))
        if self.device == "pluto":
            self.src.set_gain(0, float(gain))
        elif self.device == "usrp":
            self.src.set_gain(float(gain), 0)

    def metrics(self):
        return self.tagger.metrics()
