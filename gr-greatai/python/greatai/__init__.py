"""gr-greatai: fast, adaptable ML blocks for GNU Radio 3.10.

Blocks are thin wrappers over the ``greatai`` core library (no GNU Radio there).
"""
from .sim_source import sim_source
from .amc_classifier import amc_classifier
from .zmq_result_sink import zmq_result_sink
from .result_summary import result_summary
from .stft import stft
from .sigmf_source import sigmf_source
from .sigmf_recorder import sigmf_recorder
from .rx_tagger import rx_tagger
from .sdr_source import sdr_source
from .protobeam import protobeam
from .protobeam_source import protobeam_source
from .band_source import band_source
from .spectrogram_forecaster import spectrogram_forecaster
from .spectrogram_segmenter import spectrogram_segmenter
from .wideband_source import wideband_source
from .emitter_scanner import emitter_scanner


def __getattr__(name):
    # Qt blocks load PyQt5 only when asked for, so headless radios never import Qt
    if name in ("amc_display", "protobeam_display", "forecast_display",
                "scanner_display"):
        import importlib
        cls = getattr(importlib.import_module(f".{name}", __name__), name)
        globals()[name] = cls          # the submodule import set the name to the module
        return cls
    raise AttributeError(name)
