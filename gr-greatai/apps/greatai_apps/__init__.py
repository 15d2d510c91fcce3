"""gr-greatai apps: the `greatai` command, benchmarks, demos and screenshots.

The one layer that may import both the core library (`greatai`, no GNU Radio) and the
blocks (`gnuradio.greatai`)."""
