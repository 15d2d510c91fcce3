"""gr-greatai core library: ML and DSP for the GNU Radio blocks, with no GNU Radio import."""
__version__ = "0.1.0"
