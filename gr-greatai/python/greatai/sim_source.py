import numpy as np
import pmt
from gnuradio import gr

from greatai import sim


class sim_source(gr.sync_block):
    """Simulated radio: complex64 IQ following a schedule of emitters, tagged with truth.

    Args:
        samp_rate: sample rate in S/s (sets dwell lengths).
        schedule: "CLASS:seconds, CLASS:seconds, ..." (classes as in greatai.sim.CLASSES).
        snr_min, snr_max: SNR per sample in dB, drawn per dwell from [snr_min, snr_max].
        max_cfo: largest carrier offset as a fraction of samp_rate.
        fading: apply slow Rician fading to half of the dwells.
        seed: random seed (the stream is reproducible).
        shuffle: pick schedule entries at random instead of in order.

    Tags ``sim_label`` (symbol) and ``sim_snr`` (double, dB) mark the first sample of
    each dwell.
    """

    def __init__(self, samp_rate=1e6, schedule="BPSK:0.2,QPSK:0.2,8PSK:0.2,QAM16:0.2,QAM64:0.2,PAM4:0.2,"
                 "GFSK:0.2,CPFSK:0.2,WBFM:0.2,AM-DSB:0.2,NOISE:0.2", snr_min=10.0, snr_max=20.0,
                 max_cfo=0.01, fading=True, seed=0, shuffle=False):
        gr.sync_block.__init__(self, name="greatai_sim_source", in_sig=None, out_sig=[np.complex64])
        cond = sim.Conditions(max_cfo=float(max_cfo), fading_prob=0.5 if fading else 0.0)
        self.sim = sim.StreamSimulator(schedule, samp_rate, (snr_min, snr_max), seed=int(seed), cond=cond,
                                       shuffle=bool(shuffle))
        self._k_label = pmt.intern("sim_label")
        self._k_snr = pmt.intern("sim_snr")
        self.set_min_output_buffer(1 << 17)      # large work() calls: the per-call cost bounds the rate

    def set_snr(self, snr_min, snr_max):
        self.sim.set_snr(snr_min, snr_max)

    def work(self, input_items, output_items):
        out = output_items[0]
        x, events = self.sim.read(len(out))
        out[:] = x
        for off, label, snr in events:
            self.add_item_tag(0, off, self._k_label, pmt.intern(label))
            self.add_item_tag(0, off, self._k_snr, pmt.from_double(snr))
        return len(out)
