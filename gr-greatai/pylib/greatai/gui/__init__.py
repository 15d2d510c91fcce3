"""Qt (pyqtgraph) display panels.  PyQt5 + pyqtgraph only, no GNU Radio."""
