import time

import numpy as np
import pmt
from gnuradio import gr


class rx_tagger(gr.sync_block):
    """Pass complex IQ through and make sure it carries ``rx_freq``, ``rx_rate`` and
    ``rx_time`` tags, so results can say where they came from.

    The first sample gets all three (``rx_time`` as (full seconds, fractional seconds),
    the host clock) unless the source already tagged them (UHD does).  A source that
    restarts ``rx_time`` mid-stream is reporting a gap: UHD does so after every receive
    overflow, so each later ``rx_time`` tag counts as one overflow.

    Args:
        freq: centre frequency to tag (Hz).
        samp_rate: sample rate to tag (S/s).
    """

    def __init__(self, freq=0.0, samp_rate=1e6):
        gr.sync_block.__init__(self, name="greatai_rx_tagger", in_sig=[np.complex64], out_sig=[np.complex64])
        self.freq, self.samp_rate = float(freq), float(samp_rate)
        self._k = {k: pmt.intern(k) for k in ("rx_freq", "rx_rate", "rx_time")}
        self._seen_time = False
        self._started = False
        self.overflows = 0

    def set_freq(self, freq):
        self.freq = float(freq)
        self._retag = True

    def work(self, input_items, output_items):
        inp, out = input_items[0], output_items[0]
        n = len(inp)
        r = self.nitems_read(0)
        for t in self.get_tags_in_range(0, r, r + n):
            if pmt.eq(t.key, self._k["rx_time"]):
                if self._seen_time:
                    self.overflows += 1
                    self.logger.warn(f"receive overflow before sample {t.offset} ({self.overflows} so far)")
                self._seen_time = True
        if not self._started or getattr(self, "_retag", False):
            w = self.nitems_written(0)
            self.add_item_tag(0, w, self._k["rx_freq"], pmt.from_double(self.freq))
            if not self._started:
                self.add_item_tag(0, w, self._k["rx_rate"], pmt.from_double(self.samp_rate))
                if not self._seen_time:
                    now = time.time()
                    self.add_item_tag(0, w, self._k["rx_time"],
                                      pmt.make_tuple(pmt.from_uint64(int(now)), pmt.from_double(now % 1)))
                    self._seen_time = True
            self._started, self._retag = True, False
        out[:] = inp
        return n

    def metrics(self):
        return {"overflows": self.overflows}
