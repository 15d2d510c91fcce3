import threading

import numpy as np
import pmt
from gnuradio import gr

from greatai.sigmf_record import RecorderError, SigMFRecorder, result_columns

from . import codec
from .pmt_util import drain_at_stop, every, log_every, stop_steps

RESULTS = ("tags", "batch")


class sigmf_recorder(gr.sync_block):
    """Record a complex64 stream as SigMF, with the models' results as annotations.

    The IQ goes to ``PATH.sigmf-data``; every ``interval`` seconds it is fsynced and
    ``PATH.sigmf-meta`` is rewritten atomically for it (validated by the sigmf library),
    so a crash loses at most the last interval (see :mod:`greatai.sigmf_record`).  Results
    become annotations (``core:label``, ``greatai:confidence``, ``greatai:exit``,
    ``greatai:model``; band edges where a result has them), one per frame or one per dwell
    of equal labels.  They come from the stream's result tags (``results='tags'``: put the
    recorder after amc_classifier) or from ``greatai-batch/1`` records on the ``batch``
    port (``results='batch'``: every frame, also those classified as the flowgraph
    stops).  An unwritable path or a full disk is logged as an error and the flowgraph
    runs on without recording; ``metrics`` carries the counters about once a second and
    at stop.  ``greatai.sigmf_source`` replays a recording with the results as tags.

    Args:
        path: base name (``.sigmf-meta``/``.sigmf-data`` are added; either may be given).
        samp_rate: the stream's sample rate (S/s).
        freq: the capture's centre frequency (Hz, 0: not recorded).
        results: 'tags' or 'batch'.
        result_key: tag key of the results ('tags'): a dict with label, confidence, exit.
        frame_length: samples per classified frame (the model's frame length).
        annotate: 'dwell' (runs of contiguous frames with one label) or 'frame'.
        interval: seconds between commits.
        description: ``core:description``.
        model: ``greatai:model`` of the annotations (e.g. the model's name); '' takes it from the
            results (each names its model), so a model swapped in while recording shows as the
            model of the newest result when an annotation is written.
        max_annotations: annotations kept; the rest are counted as dropped.
    """

    def __init__(self, path="", samp_rate=1e6, freq=0.0, results="tags", result_key="amc", frame_length=1024,
                 annotate="dwell", interval=1.0, description="", model="", max_annotations=100000):
        gr.sync_block.__init__(self, name="greatai_sigmf_recorder", in_sig=[np.complex64], out_sig=None)
        if results not in RESULTS:
            raise ValueError(f"results must be one of {RESULTS}, got {results!r}")
        if int(frame_length) < 1:
            raise ValueError(f"frame_length must be >= 1, got {frame_length}")
        if not str(path).strip():
            raise ValueError("sigmf_recorder needs a path to record to")
        self.rec = SigMFRecorder(str(path).strip(), samp_rate, freq, description, interval, annotate,
                                 max_annotations, model)
        self.results, self.L, self._fixed_model = results, int(frame_length), bool(str(model))
        self.result_key = pmt.intern(result_key)
        self._lock = threading.Lock()
        self.bad_results = 0
        self.ignored_messages = 0
        self._error_logged = False
        self.message_port_register_in(pmt.intern("batch"))
        self.set_msg_handler(pmt.intern("batch"), self._handle)
        self.message_port_register_out(pmt.intern("metrics"))
        self._metrics_due = every(1.0)

    @property
    def path(self):
        return self.rec.meta_p

    def metrics(self) -> dict:
        with self._lock:
            c = dict(self.rec.counts)
        c.update(bad_results=self.bad_results, ignored_messages=self.ignored_messages)
        return c

    def error(self):
        return self.rec.error

    # ---- scheduler ----
    def start(self):
        if self.rec.closed:
            self.logger.warn(f"{self.rec.meta_p} is finished: a restarted flowgraph does not record it again")
            return True
        try:
            self.rec.open()
            self.logger.info(f"recording to {self.rec.meta_p} (results from {self.results})")
        except RecorderError as e:
            self._error_logged = True
            self.logger.error(f"{e}; the flowgraph runs on without recording")
        return True

    def stop(self):
        return stop_steps(self, lambda: drain_at_stop(self, "batch", self._handle, 1.5), self._close,
                          self._publish_metrics)

    def work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        r = self.nitems_read(0)
        with self._lock:
            try:
                self.rec.write(x)
                if self.results == "tags":
                    self._annotate_tags(self.get_tags_in_range(0, r, r + n, self.result_key))
            except Exception as e:        # a bug: logged; the stream goes on
                log_every(self, "work", 5.0, f"recording failed at sample {r}: {e!r}", level="error")
            self._log_error()
        if self._metrics_due.due("metrics"):
            self._publish_metrics()
        return n

    def _annotate_tags(self, tags):
        offs, labels, exits, conf, bad = codec.result_tags(tags, confidence=True)
        if bad:
            self.bad_results += bad
            log_every(self, "bad", 5.0, f"{self.bad_results} '{pmt.symbol_to_string(self.result_key)}' tags "
                                        "not recorded so far: not a dict with label, confidence and exit",
                      level="error")
        if offs:
            m = pmt.dict_ref(tags[-1].value, codec.sym("model"), pmt.PMT_NIL) if pmt.is_dict(tags[-1].value) else None
            if not self._fixed_model and m is not None and pmt.is_symbol(m):
                self.rec.model = pmt.symbol_to_string(m)
            self.rec.annotate(offs, self.L, labels, conf, exits)

    def _handle(self, msg):
        if self.results != "batch":
            self.ignored_messages += 1
            log_every(self, "ignored", 30.0, "a message on 'batch' is not recorded: results='tags' records the "
                                             "stream's tags (set results='batch' to record messages)")
            return
        try:
            obj = codec.to_python(msg)
            cols = result_columns(obj, self.L)
        except ValueError as e:
            self.bad_results += 1
            log_every(self, "bad", 5.0, f"result not recorded ({self.bad_results} so far): {e}", level="error")
            return
        with self._lock:
            if not self._fixed_model and obj.get("model"):
                self.rec.model = str(obj["model"])
            self.rec.annotate(*cols)

    def _log_error(self):
        if self.rec.error and not self._error_logged:
            self._error_logged = True
            self.logger.error(f"{self.rec.error}; the flowgraph runs on without recording")

    def _close(self):
        with self._lock:
            meta = self.rec.close()
            self._log_error()
        c = self.rec.counts
        if meta is not None:
            dropped = f" ({c['annotations_dropped']} more dropped)" if c["annotations_dropped"] else ""
            self.logger.info(f"recorded {c['committed']} samples and {c['annotations']} annotations{dropped} "
                             f"to {meta}")

    def _publish_metrics(self):
        m = {k: np.uint64(v) for k, v in self.metrics().items()}
        m["recording"] = bool(self.rec.recording)
        if self.rec.error:
            m["error"] = str(self.rec.error)
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(m))
