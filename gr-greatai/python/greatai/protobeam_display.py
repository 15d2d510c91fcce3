import numpy as np
import pmt
from gnuradio import gr

from greatai import runtime


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
    """

    def __init__(self, model="", title="ProtoBeam", history=300, fps=30.0, cpu_budget=0.02):
        gr.basic_block.__init__(self, name="greatai_protobeam_display", in_sig=None, out_sig=None)
        from greatai.gui.protobeam_panel import ProtoBeamPanel     # needs a QApplication (GRC's QT GUI makes one)
        from greatai.protobeam.sim import BEAM_ANGLES_DEG
        meta = runtime.load_metadata(runtime.resolve_model(model, "protobeam"))
        self.panel = ProtoBeamPanel(meta["classes"], meta.get("beam_angles_deg", BEAM_ANGLES_DEG),
                                    history=history, fps=fps, cpu_budget=cpu_budget, title=title)
        self._k = {n: pmt.intern(n) for n in ("beam", "confidence", "embedding", "dim", "shots", "prototypes")}
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        k = self._k
        beam = pmt.dict_ref(msg, k["beam"], pmt.PMT_NIL) if pmt.is_dict(msg) else pmt.PMT_NIL
        if not pmt.is_s32vector(beam):
            self.logger.warn("protobeam_display expects protobeam's batch messages (dict of vectors); ignored")
            return
        beams = np.asarray(pmt.s32vector_elements(beam))
        conf = np.asarray(pmt.f32vector_elements(pmt.dict_ref(msg, k["confidence"], pmt.PMT_NIL)))
        dim = pmt.to_long(pmt.dict_ref(msg, k["dim"], pmt.from_long(0)))
        emb = pmt.dict_ref(msg, k["embedding"], pmt.PMT_NIL)
        emb = np.asarray(pmt.f32vector_elements(emb)).reshape(-1, dim) if dim and pmt.is_f32vector(emb) else None
        shots = pmt.dict_ref(msg, k["shots"], pmt.PMT_NIL)
        shots = np.asarray(pmt.s64vector_elements(shots)) if pmt.is_s64vector(shots) else None
        pr = pmt.dict_ref(msg, k["prototypes"], pmt.PMT_NIL)
        pr = np.asarray(pmt.f32vector_elements(pr)).reshape(-1, dim) if dim and pmt.is_f32vector(pr) else None
        self.panel.push_batch(beams, conf, emb, shots, pr)

    def qwidget(self):
        return self.panel
