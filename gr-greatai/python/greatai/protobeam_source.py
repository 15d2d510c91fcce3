import numpy as np
import pmt
from gnuradio import gr

from greatai.protobeam import sim


class protobeam_source(gr.sync_block):
    """Simulated phased-array transmitter seen by one receiver (the ProtoBeam demo radio).

    Frames of the known waveform leave the array on one of 24 beams; the beam switches
    every ``dwell`` frames (at random, or in order), and the RF front end can change at
    run time (``set_front_end``) or once, automatically, after ``switch_after`` seconds of
    samples.  Physics and front-end signatures: ``greatai.protobeam.sim``.

    Every frame's first sample is tagged with ground truth: ``sim_label`` (beam name,
    symbol, e.g. ``B07``), ``sim_front_end`` (long) and ``sim_snr`` (double, received SNR).

    Args:
        samp_rate: sample rate in S/s (only used to time ``switch_after``).
        front_end: front end index at start (0-11; 4 and 5 were never seen in training).
        switch_to: front end to change to after ``switch_after`` seconds (-1: never).
        switch_after: seconds of samples before the change.
        dwell: frames per beam before it switches.
        shuffle: random beams (else 0, 1, 2, ... in order).
        seed: random seed (the stream is reproducible).
        position: receiver position in the room (0-2).
    """

    def __init__(self, samp_rate=1e6, front_end=0, switch_to=-1, switch_after=10.0, dwell=4, shuffle=True, seed=0,
                 position=0):
        gr.sync_block.__init__(self, name="greatai_protobeam_source", in_sig=None, out_sig=[np.complex64])
        for name, v in (("front_end", front_end), ("switch_to", switch_to)):
            if not -1 <= int(v) < sim.N_FRONT_ENDS or (name == "front_end" and int(v) < 0):
                raise ValueError(f"{name} must be a front end index 0..{sim.N_FRONT_ENDS - 1}, got {v}")
        self.stream = sim.BeamStream(int(front_end), int(dwell), int(seed), bool(shuffle), position=int(position))
        self.switch_to = int(switch_to)
        self.switch_at = int(float(switch_after) * float(samp_rate))
        self.set_output_multiple(self.stream.length)
        self.set_min_output_buffer(1 << 17)      # 128 frames a work() call: the per-call cost bounds the rate
        self._keys = tuple(pmt.intern(k) for k in ("sim_label", "sim_front_end", "sim_snr"))
        self._names = [pmt.intern(f"B{b:02d}") for b in range(sim.N_BEAMS)]

    def set_front_end(self, front_end):
        if not 0 <= int(front_end) < sim.N_FRONT_ENDS:
            raise ValueError(f"front_end must be 0..{sim.N_FRONT_ENDS - 1}, got {front_end}")
        self.stream.set_front_end(int(front_end))

    def front_end(self):
        return self.stream.fe.index

    def work(self, input_items, output_items):
        out = output_items[0]
        w = self.nitems_written(0)
        if self.switch_to >= 0 and w >= self.switch_at:
            self.logger.info(f"front end changes: {self.stream.fe.index} -> {self.switch_to}")
            self.stream.set_front_end(self.switch_to)
            self.switch_to = -1
        n = len(out)
        if self.switch_to >= 0:                 # stop this call at the change (whole frames)
            L = self.stream.length
            n = min(n, max(L, -(-(self.switch_at - w) // L) * L))
        x, events = self.stream.read(n)
        out[:n] = x
        (kl, kf, ks), add = self._keys, self.add_item_tag
        for off, beam, fe, snr in events:
            add(0, w + off, kl, self._names[beam])
            add(0, w + off, kf, pmt.from_long(fe))
            add(0, w + off, ks, pmt.from_double(snr))
        return n
