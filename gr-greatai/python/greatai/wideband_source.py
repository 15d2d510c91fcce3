import json

import numpy as np
import pmt
from gnuradio import gr

from greatai import wideband

from . import codec


class wideband_source(gr.sync_block):
    """Simulated wideband radio: a band holding several emitters of different kinds,
    bandwidths, powers and on/off times, tagged with the truth of every burst.

    ``period`` seconds of band are made at start (``greatai.wideband.make``: each emitter
    is a classifier class at four times its nominal bandwidth, interpolated, moved to its
    centre, keyed, and scaled to its SNR over the noise in its bandwidth) and then
    streamed in a loop.  The first sample of every burst carries a ``sim_emitter`` tag, a
    dict: label, center_hz, bandwidth_hz (where 95 % of its power is), snr_db, start and
    stop (stream seconds).

    Args:
        samp_rate: band sample rate (S/s).
        emitters: '' for the default five (500 kHz QPSK to a 25 kHz AM-DSB channel at
            20 MS/s, scaled to the band), or a JSON list of {label, center_hz,
            bandwidth_hz, snr_db, on_s, off_s, offset_s}.
        period: seconds of band made and repeated (keying periods should divide it).
        seed: random seed (the band is reproducible).
    """

    def __init__(self, samp_rate=20e6, emitters="", period=0.6, seed=0):
        gr.sync_block.__init__(self, name="greatai_wideband_source", in_sig=None, out_sig=[np.complex64])
        if not float(samp_rate) > 0 or not float(period) > 0:
            raise ValueError(f"samp_rate and period must be > 0, got {samp_rate} and {period}")
        if isinstance(emitters, str) and emitters.strip():
            try:
                emitters = json.loads(emitters)
            except ValueError as e:
                raise ValueError(f"emitters is not a JSON list of emitters: {e}") from None
        if isinstance(emitters, (list, tuple)) and emitters and not all(isinstance(e, dict) for e in emitters):
            raise ValueError("emitters must be a list of dicts with label, center_hz, bandwidth_hz, ...")
        try:
            self.band = wideband.LoopedBand(float(samp_rate), emitters or None, float(period), int(seed))
        except TypeError as e:
            raise ValueError(f"an emitter has an unknown or missing field: {e}") from None
        self._key = pmt.intern("sim_emitter")
        self.set_min_output_buffer(1 << 17)

    def truth(self, seconds):
        """Every burst in the first ``seconds`` of the stream (for scoring)."""
        return self.band.truth(float(seconds))

    def work(self, input_items, output_items):
        out = output_items[0]
        w = self.nitems_written(0)
        x, events = self.band.read(len(out))
        out[:] = x
        for off, burst in events:
            self.add_item_tag(0, w + off, self._key, codec.to_pmt(burst))
        return len(out)
