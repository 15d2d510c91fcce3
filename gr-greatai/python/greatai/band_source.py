import numpy as np
import pmt
from gnuradio import gr

from greatai.forecast import traffic


class band_source(gr.sync_block):
    """Simulated band for spectrum forecasting: the spectrum-traffic mode of the simulated radio.

    Complex64 IQ of a band holding several emitters with realistic patterns (periodic TDD
    bursts, random on/off traffic, frequency hoppers, wideband OFDM-like bursts, narrowband
    carriers, sweeps) at SNRs of 0-20 dB; see ``greatai.forecast.traffic``.  The band is
    split into 64 channels and time into frames of ``fft_size * average`` samples (what one
    ``greatai.stft`` vector covers with hop = fft_size); every frame is synthesised in the
    frequency domain, so an STFT with a rectangular window sees it exactly.

    The first sample of every frame carries a ``sim_occupancy`` tag: u8vector of the 64
    channels' true occupancy (1 = an emitter is on).

    Args:
        fft_size: FFT size of the analysis (a multiple of 64).
        average: FFTs per frame.
        seed: random seed (the band and its traffic are reproducible).
    """

    def __init__(self, fft_size=1024, average=16, seed=0):
        gr.sync_block.__init__(self, name="greatai_band_source", in_sig=None, out_sig=[np.complex64])
        if int(fft_size) % traffic.N_CHANNELS or int(fft_size) < traffic.N_CHANNELS:
            raise ValueError(f"fft_size must be a multiple of {traffic.N_CHANNELS}, got {fft_size}")
        if int(average) < 1:
            raise ValueError(f"average must be >= 1, got {average}")
        self.stream = traffic.TrafficStream(int(seed), traffic.N_CHANNELS, int(fft_size), int(average))
        self.set_output_multiple(self.stream.frame_samples)
        self.set_min_output_buffer(8 * self.stream.frame_samples)     # frames a work() call: fewer calls
        self._key = pmt.intern("sim_occupancy")

    def work(self, input_items, output_items):
        out = output_items[0]
        w = self.nitems_written(0)
        x, events = self.stream.read(len(out))
        out[:] = x
        for off, occ in events:
            self.add_item_tag(0, w + off, self._key, pmt.init_u8vector(len(occ), occ.astype(np.uint8)))
        return len(out)
