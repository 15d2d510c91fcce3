import numpy as np
from gnuradio import gr

from greatai import spectrum


class stft(gr.decim_block):
    """Short-time Fourier transform: complex stream in, power-spectrum vectors in dB out.

    One output vector per ``hop * average`` input samples: the mean power of
    ``average`` windowed FFTs whose starts are ``hop`` samples apart, in dB (a complex
    tone of amplitude 1 reads 0 dB), FFT-shifted so DC is in the middle.  Vector j covers
    the FFTs that end with its own hop*average new samples (the stream is preceded by
    fft_size - hop zeros, as GNU Radio's history works).  Many vectors
    are computed per work() call in one vectorised numpy pass.

    Args:
        fft_size: FFT length (power of two); also the output vector length.
        hop: samples between successive FFT frames (fft_size = no overlap).
        window: 'hann', 'hamming', 'blackman' or 'rect'.
        average: FFT frames averaged into each output vector.
    """

    def __init__(self, fft_size=1024, hop=1024, window="hann", average=1):
        spectrum.check_params(fft_size, hop, average)
        self.fft_size, self.hop, self.average = int(fft_size), int(hop), int(average)
        self.win = spectrum.window(window, self.fft_size)
        gr.decim_block.__init__(self, name="greatai_stft", in_sig=[np.complex64],
                                out_sig=[(np.float32, self.fft_size)], decim=self.hop * self.average)
        self.set_history(max(1, self.fft_size - self.hop + 1))
        self.set_output_multiple(max(1, 4096 // self.fft_size))

    def work(self, input_items, output_items):
        out = output_items[0]
        n = len(out)
        x = input_items[0][:(n - 1) * self.hop * self.average + (self.average - 1) * self.hop + self.fft_size]
        db = spectrum.power_db(x, self.fft_size, self.hop, self.win, self.average)
        out[:len(db)] = db
        return len(db)
