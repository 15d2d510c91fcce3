import numpy as np
import pmt
from gnuradio import gr

from greatai.forecast.engine import pool

from . import codec
from .pmt_util import close_display, logger_fn, stop_steps


class scanner_display(gr.sync_block):
    """Qt display of the wideband scanner: a waterfall of the band in radio units (MHz,
    seconds) with a labelled box over each emitter found (label, confidence, exit).

    Connect a ``greatai.stft`` of the band (the same FFT size and average as the
    scanner's) to the stream input, and the scanner's ``emitters`` port to ``emitters``.
    Spectra are pooled to ``columns`` for drawing.  Data are queued from the scheduler and
    message threads; the panel redraws on the GUI thread at most ``fps`` times a second.

    Args:
        samp_rate: band sample rate (S/s).
        center_freq: the band's centre (Hz), for absolute frequencies.
        fft_size: input vector length.
        average: FFTs per input vector (a row covers fft_size * average samples).
        columns: waterfall columns (fft_size must be a multiple).
        title, history (rows), fps, cpu_budget, quit_at_end: as the other displays.
    """

    def __init__(self, samp_rate=20e6, center_freq=0.0, fft_size=1024, average=8, columns=512,
                 title="Wideband scanner", history=300, fps=30.0, cpu_budget=0.02, quit_at_end=True):
        fft_size, columns = int(fft_size), int(columns)
        if columns < 1 or fft_size % columns:
            raise ValueError(f"fft_size {fft_size} is not a multiple of columns {columns}")
        gr.sync_block.__init__(self, name="greatai_scanner_display", in_sig=[(np.float32, fft_size)], out_sig=None)
        from greatai.gui.scanner_panel import ScannerPanel    # needs a QApplication (GRC's QT GUI makes one)
        self.columns, self.quit_at_end = columns, bool(quit_at_end)
        self.panel = ScannerPanel(samp_rate, center_freq, fft_size * int(average) / float(samp_rate), columns,
                                  history, fps, title, cpu_budget)
        self.panel.log = logger_fn(self)
        self.panel.decoder = lambda msg: self._decode(codec.to_python(msg))
        self.message_port_register_in(pmt.intern("emitters"))
        self.set_msg_handler(pmt.intern("emitters"), self._handle)

    def work(self, input_items, output_items):
        x = input_items[0]
        self.panel.push_spectrum(pool(np.nan_to_num(x, nan=-200.0, posinf=-200.0, neginf=-200.0), self.columns))
        return len(x)

    def _handle(self, msg):
        """Queued as it is; decoded on the GUI thread."""
        self.panel.push_raw(msg)

    @staticmethod
    def _decode(d):
        need = ("id", "center_hz", "bandwidth_hz", "start", "stop")
        if not isinstance(d, dict) or not all(k in d for k in need):
            return None
        return ("r", d)

    def stop(self):
        return stop_steps(self, lambda: self.quit_at_end and close_display(self, self.panel))

    def qwidget(self):
        return self.panel
