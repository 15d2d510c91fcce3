import numpy as np
import pmt
from gnuradio import gr

from greatai import contract, records
from greatai.forecast.engine import pool
from greatai.forecast.live import BandGeometry

from . import codec
from .pmt_util import close_display, logger_fn, stop_steps


class forecast_display(gr.sync_block):
    """Qt display of spectrum forecasting: a waterfall of the past spectrogram with the
    latest forecast stacked above it and the predicted-free span outlined.

    Connect greatai.stft's output to the stream input (vectors are pooled to the model's
    channels), spectrogram_forecaster's ``forecast`` port to ``forecast`` and, optionally,
    spectrogram_segmenter's ``segments`` port to ``segments`` (regions outlined over the
    waterfall, coloured by label).  Data are
    queued from the scheduler and message threads; the panel redraws on the GUI thread at
    most ``fps`` times a second, so it never slows the flowgraph.

    Args:
        fft_size: input vector length (a multiple of the model's channel count).
        model: model whose channel and horizon counts shape the display ('' = shipped).
        title: panel title.
        history: past frames in the waterfall.
        fps: maximum redraws per second.
        cpu_budget: share of one core the redraws may take (fewer redraws when dearer).
        quit_at_end: close the GUI when the flowgraph stops (its stream ended or its duration ran out).
    """

    def __init__(self, fft_size=1024, model="", title="Spectrum forecast", history=200, fps=30.0,
                 cpu_budget=0.02, quit_at_end=True):
        m = contract.load(model, "forecast", verify=False)
        self.channels, horizons = m.field("channels", int), m.field("horizons", int)
        if int(fft_size) % self.channels:
            raise ValueError(f"fft_size {fft_size} is not a multiple of the model's {self.channels} channels")
        gr.sync_block.__init__(self, name="greatai_forecast_display", in_sig=[(np.float32, int(fft_size))],
                               out_sig=None)
        from greatai.gui.forecast_panel import ForecastPanel    # needs a QApplication (GRC's QT GUI makes one)
        self.quit_at_end = bool(quit_at_end)
        self.panel = ForecastPanel(self.channels, horizons, history=history, fps=fps, cpu_budget=cpu_budget,
                                   title=title)
        # the geometry comes with each message (its band_low_hz and channel_hz)
        self.panel.log = logger_fn(self)
        self.panel.decoder = lambda msg: self._decode(codec.to_python(msg))
        self.message_port_register_in(pmt.intern("forecast"))
        self.set_msg_handler(pmt.intern("forecast"), self._handle)
        self.message_port_register_in(pmt.intern("segments"))
        self.set_msg_handler(pmt.intern("segments"), self._handle_segment)

    def work(self, input_items, output_items):
        x = input_items[0]
        self.panel.push_spectrum(pool(x, self.channels))
        return len(x)

    def _handle(self, msg):
        """Queued as it is; decoded on the GUI thread (``records.forecast_display_item``)."""
        self.panel.push_raw(msg)

    def _handle_segment(self, msg):
        d = codec.to_python(msg)
        if isinstance(d, dict) and {"frames", "channels", "label"} <= set(d):
            self.panel.push_segment(*d["frames"], *d["channels"], d["label"])

    def _decode(self, d):
        if not isinstance(d, dict) or "channel_hz" not in d:
            return None
        geometry = BandGeometry.from_message(d, self.channels)
        self.panel.set_units(geometry.low_hz, geometry.channel_hz, float(d.get("frame_seconds", 0.0)))
        item = records.forecast_display_item(d, geometry)
        return None if item is None else ("f",) + (item[0].reshape(-1, self.channels),) + item[1:]

    def stop(self):
        return stop_steps(self, lambda: self.quit_at_end and close_display(self, self.panel))

    def qwidget(self):
        return self.panel
