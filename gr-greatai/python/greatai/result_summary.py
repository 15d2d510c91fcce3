import json
import time

import numpy as np
import pmt
from gnuradio import gr

from greatai.fileio import atomic_write
from greatai.summary import Scoreboard

from . import codec
from .pmt_util import end_program, stop_steps


def _text(v):
    return pmt.symbol_to_string(v) if pmt.is_symbol(v) else str(pmt.to_python(v))


class result_summary(gr.sync_block):
    """Console summary of results carried as stream tags, scored against ground truth.

    Reads result tags (``result_key``, a dict with at least ``label`` and optionally
    ``exit``) and ground-truth tags (``truth_key``, e.g. ``sim_label`` from
    greatai.sim_source or a SigMF replay).  Every ``interval`` seconds it logs frames/s,
    the share leaving at exit 1, counts per label and accuracy against the truth.

    Args:
        result_key: tag key of the results (``amc`` for amc_classifier).
        truth_key: tag key of the ground truth label.
        interval: seconds between summaries.
        duration: stop the flowgraph after this many seconds (0: run until stopped): the
            stream ends here, and a program that stops its flowgraph on SIGTERM (as
            GRC-generated ones do) is asked to, so message sources do not keep it running.
        json_path: if set, the final summary is written there (atomically) at stop.
    """

    def __init__(self, result_key="amc", truth_key="sim_label", interval=1.0, duration=0.0, json_path=""):
        gr.sync_block.__init__(self, name="greatai_result_summary", in_sig=[np.complex64], out_sig=None)
        self.result_key = pmt.intern(result_key)
        self.truth_key = pmt.intern(truth_key)
        self.interval = float(interval)
        self.duration = float(duration)
        self.json_path = json_path
        self.board = Scoreboard()
        self._t0 = None
        self._last = None

    def set_interval(self, interval):
        self.interval = float(interval)

    def work(self, input_items, output_items):
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = self._last = now
        n = len(input_items[0])
        r = self.nitems_read(0)
        truth = self.get_tags_in_range(0, r, r + n, self.truth_key)
        offs, labels, exits, _, _ = codec.result_tags(self.get_tags_in_range(0, r, r + n, self.result_key))
        self.board.update(offs, labels, exits, [t.offset for t in truth], [_text(t.value) for t in truth])
        if now - self._last >= self.interval:
            self._last = now
            self.logger.info(self.board.line(now - self._t0))
        if self.duration > 0 and now - self._t0 >= self.duration:
            end_program(self)
            return -1
        return n

    def summary(self):
        return self.board.summary(time.monotonic() - (self._t0 or time.monotonic()))

    def stop(self):
        return stop_steps(self, self._final)

    def _final(self):
        s = self.summary()
        self.logger.info("final: " + self.board.line(s["seconds"]))
        if self.json_path:
            atomic_write(self.json_path, json.dumps(s, indent=2))
