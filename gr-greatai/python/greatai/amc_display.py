import numpy as np
import pmt
from gnuradio import gr

from greatai import runtime


class amc_display(gr.basic_block):
    """Qt display of early-exit AMC results (class-probability bars, label timeline, share
    leaving at exit 1).  Connect amc_classifier's ``batch`` port to ``in`` (its per-frame
    ``classification`` port works too, but costs a message per frame).

    Messages are queued from the message thread; the panel redraws on the GUI thread at
    most ``fps`` times a second, so it never slows the flowgraph.

    Args:
        model: model whose class list labels the axes ('' = the shipped amc_ee).
        title: panel title.
        history: results shown on the timeline.
        fps: maximum redraws per second.
    """

    def __init__(self, model="", title="Early-exit AMC", history=300, fps=30.0):
        gr.basic_block.__init__(self, name="greatai_amc_display", in_sig=None, out_sig=None)
        from greatai.gui.amc_panel import AMCPanel       # needs a QApplication (GRC's QT GUI makes one)
        classes = runtime.load_metadata(runtime.resolve_model(model, "amc_ee"))["classes"]
        self.panel = AMCPanel(classes, history=history, fps=fps, title=title)
        self.widget = self.panel
        self._k = {n: pmt.intern(n) for n in ("label", "exit", "confidence", "probs")}
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        """Takes amc_classifier's ``batch`` messages (one per inference batch: cheap at any
        rate) or its per-frame ``classification`` dicts."""
        if not pmt.is_dict(msg):
            self.logger.warn("amc_display expects PMT dicts from amc_classifier; message ignored")
            return
        k = self._k
        lab = pmt.dict_ref(msg, k["label"], pmt.PMT_NIL)
        if pmt.is_s32vector(lab):                                   # a batch
            self.panel.push_batch(np.asarray(pmt.s32vector_elements(lab)),
                                  np.asarray(pmt.u8vector_elements(pmt.dict_ref(msg, k["exit"], pmt.PMT_NIL))),
                                  np.asarray(pmt.f32vector_elements(pmt.dict_ref(msg, k["confidence"], pmt.PMT_NIL))),
                                  np.asarray(pmt.f32vector_elements(pmt.dict_ref(msg, k["probs"], pmt.PMT_NIL))))
            return
        ex = pmt.dict_ref(msg, k["exit"], pmt.PMT_NIL)
        conf = pmt.dict_ref(msg, k["confidence"], pmt.PMT_NIL)
        p = pmt.dict_ref(msg, k["probs"], pmt.PMT_NIL)
        self.panel.push({"label": pmt.symbol_to_string(lab) if pmt.is_symbol(lab) else None,
                         "exit": pmt.to_long(ex) if pmt.is_integer(ex) else 0,
                         "confidence": pmt.to_double(conf) if pmt.is_real(conf) else None,
                         "probs": pmt.f32vector_elements(p) if pmt.is_f32vector(p) else None})

    def qwidget(self):
        return self.panel
