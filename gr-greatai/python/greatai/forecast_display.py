import numpy as np
import pmt
from gnuradio import gr

from greatai import runtime
from greatai.forecast.engine import pool

from .pmt_util import to_python


class forecast_display(gr.sync_block):
    """Qt display of spectrum forecasting: a waterfall of the past spectrogram with the
    latest forecast stacked above it and the predicted-free span outlined.

    Connect greatai.stft's output to the stream input (vectors are pooled to the model's
    channels) and spectrogram_forecaster's ``forecast`` port to ``forecast``.  Data are
    queued from the scheduler and message threads; the panel redraws on the GUI thread at
    most ``fps`` times a second, so it never slows the flowgraph.

    Args:
        fft_size: input vector length (a multiple of the model's channel count).
        model: model whose channel and horizon counts shape the display ('' = shipped).
        title: panel title.
        history: past frames in the waterfall.
        fps: maximum redraws per second.
        cpu_budget: share of one core the redraws may take (fewer redraws when dearer).
    """

    def __init__(self, fft_size=1024, model="", title="Spectrum forecast", history=200, fps=30.0,
                 cpu_budget=0.02):
        meta = runtime.load_metadata(runtime.resolve_model(model, "forecast"))
        self.channels, horizons = int(meta["channels"]), int(meta["horizons"])
        if int(fft_size) % self.channels:
            raise ValueError(f"fft_size {fft_size} is not a multiple of the model's {self.channels} channels")
        gr.sync_block.__init__(self, name="greatai_forecast_display", in_sig=[(np.float32, int(fft_size))],
                               out_sig=None)
        from greatai.gui.forecast_panel import ForecastPanel    # needs a QApplication (GRC's QT GUI makes one)
        self.panel = ForecastPanel(self.channels, horizons, history=history, fps=fps, cpu_budget=cpu_budget,
                                   title=title)
        self.message_port_register_in(pmt.intern("forecast"))
        self.set_msg_handler(pmt.intern("forecast"), self._handle)

    def work(self, input_items, output_items):
        x = input_items[0]
        self.panel.push_spectrum(pool(x, self.channels))
        return len(x)

    def _handle(self, msg):
        if not pmt.is_dict(msg):
            self.logger.warn("forecast_display expects spectrogram_forecaster's forecast dicts; message ignored")
            return
        m = to_python(msg)
        if m.get("status") != "ok" or "probabilities" not in m:
            return
        free, text = None, ""
        nf = m.get("next_free")
        if isinstance(nf, dict) and "band_low_hz" in m:
            ch = float(m["channel_hz"])
            start = int(round((nf["center_hz"] - nf["bandwidth_hz"] / 2 - m["band_low_hz"]) / ch))
            free = (start, int(round(nf["bandwidth_hz"] / ch)), int(nf["free_frames"]))
            text = (f"next free: {nf['bandwidth_hz'] / 1e3:.0f} kHz at {nf['center_hz'] / 1e6:+.3f} MHz for "
                    f"{1e3 * nf['free_seconds']:.1f} ms ({nf['free_frames']} frames)")
        self.panel.push_forecast(m["probabilities"], free, text)

    def qwidget(self):
        return self.panel
