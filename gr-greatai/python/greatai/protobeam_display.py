import pmt
from gnuradio import gr

from greatai import contract, records

from . import codec
from .pmt_util import close_display, logger_fn, stop_steps


class protobeam_display(gr.basic_block):
    """Qt display of ProtoBeam (beam decisions as a polar fan, calibration shots per beam,
    PCA of recent embeddings with the prototypes).  Connect protobeam's ``batch`` port to
    ``in``.

    Messages are queued from the message thread; the panel redraws on the GUI thread at
    most ``fps`` times a second, so it never slows the flowgraph.

    Args:
        model: model whose beam list labels the axes ('' = the shipped protobeam).
        title: panel title.
        history: recent frames shown (fan shares and PCA points).
        fps: maximum redraws per second.
        cpu_budget: share of one core the redraws may take (fewer redraws when dearer).
        quit_at_end: close the GUI when the flowgraph stops (its stream ended or its duration ran out).
    """

    def __init__(self, model="", title="ProtoBeam", history=300, fps=30.0, cpu_budget=0.02, quit_at_end=True):
        gr.basic_block.__init__(self, name="greatai_protobeam_display", in_sig=None, out_sig=None)
        from greatai.gui.protobeam_panel import ProtoBeamPanel     # needs a QApplication (GRC's QT GUI makes one)
        from greatai.protobeam.sim import BEAM_ANGLES_DEG
        m = contract.load(model, "protobeam", verify=False)
        self.quit_at_end = bool(quit_at_end)
        self.panel = ProtoBeamPanel(m.classes, m.meta.get("beam_angles_deg", BEAM_ANGLES_DEG),
                                    history=history, fps=fps, cpu_budget=cpu_budget, title=title)
        self.panel.log = logger_fn(self)
        self.panel.decoder = lambda msg: records.beam_display_item(codec.to_python(msg))
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        """Queued as it is; decoded on the GUI thread (``records.beam_display_item``)."""
        self.panel.push_raw(msg)

    def stop(self):
        return stop_steps(self, lambda: self.quit_at_end and close_display(self, self.panel))

    def qwidget(self):
        return self.panel
