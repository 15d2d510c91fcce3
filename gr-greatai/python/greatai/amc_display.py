import pmt
from gnuradio import gr

from greatai import contract, records

from . import codec
from .pmt_util import close_display, logger_fn, stop_steps


class amc_display(gr.basic_block):
    """Qt display of early-exit AMC results (class-probability bars, label timeline, share
    leaving at exit 1).  Connect amc_classifier's ``batch`` port to ``in`` (its per-frame
    ``classification`` port works too, but costs a message per frame).

    Messages are queued from the message thread; the panel redraws on the GUI thread at
    most ``fps`` times a second, so it never slows the flowgraph.

    Args:
        model: model whose class list labels the axes ('' = the shipped amc_ee).  Its classes
            must be those of the classifier's model.
        title: panel title.
        history: results shown on the timeline.
        fps: maximum redraws per second.
        cpu_budget: share of one core the redraws may take (fewer redraws when dearer).
        quit_at_end: close the GUI when the flowgraph stops (its stream ended or its duration ran out).
    """

    def __init__(self, model="", title="Early-exit AMC", history=300, fps=30.0, cpu_budget=0.02, quit_at_end=True):
        gr.basic_block.__init__(self, name="greatai_amc_display", in_sig=None, out_sig=None)
        from greatai.gui.amc_panel import AMCPanel       # needs a QApplication (GRC's QT GUI makes one)
        classes = contract.load(model, "amc", verify=False).classes
        self.quit_at_end = bool(quit_at_end)
        self.panel = AMCPanel(classes, history=history, fps=fps, cpu_budget=cpu_budget, title=title)
        self.panel.log = logger_fn(self)
        self.panel.decoder = lambda msg: records.amc_display_item(codec.to_python(msg), classes)
        self.widget = self.panel
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        """Takes amc_classifier's ``batch`` messages (one per inference batch: cheap at any
        rate) or its per-frame ``classification`` dicts.  The message is only queued here:
        the GUI thread converts it when it redraws, so this thread holds the GIL (which the
        classifier's work thread needs) for as short a time as possible."""
        self.panel.push_raw(msg)

    def stop(self):
        return stop_steps(self, lambda: self.quit_at_end and close_display(self, self.panel))

    def qwidget(self):
        return self.panel
