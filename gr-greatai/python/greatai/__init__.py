"""gr-greatai: fast, adaptable ML blocks for GNU Radio 3.10.

Blocks are thin wrappers over the ``greatai`` core library (no GNU Radio there).
"""
from .sim_source import sim_source
from .amc_classifier import amc_classifier
from .zmq_result_sink import zmq_result_sink
from .result_summary import result_summary
from .stft import stft
from .sigmf_source import sigmf_source
from .rx_tagger import rx_tagger
from .sdr_source import sdr_source


def __getattr__(name):
    # Qt blocks load PyQt5 only when asked for, so headless radios never import Qt
    if name == "amc_display":
        from .amc_display import amc_display
        globals()["amc_display"] = amc_display     # the submodule import set the name to the module
        return amc_display
    raise AttributeError(name)
