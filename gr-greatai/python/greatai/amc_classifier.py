import time

import numpy as np
import pmt
from gnuradio import gr

from greatai import runtime
from greatai.amc.engine import EarlyExitEngine

from .pmt_util import dict_from, guarded_passthrough, has_subscribers, log_every, size_for_batches, stop_steps


class amc_classifier(gr.sync_block):
    """Early-exit automatic modulation classifier, inline on a complex64 stream.

    The IQ passes through unchanged.  Frames of the model's frame length, on a grid
    from the start of the stream, are batched and run on a background thread: exit 1
    for all, branch 2 only for frames whose normalised entropy exceeds T.  The first
    sample of each classified frame gets an ``amc`` tag (dict: label, confidence rounded to
    0.001, exit, status), and the ``classification`` port gets a PMT dict per frame (label,
    confidence, exit, offset, probs, entropy, status).  ``metrics`` carries counters
    about once a second.

    Output is held back only until the results for it are known, so tags land on time.
    With ``overload='skip'`` (live radios) the IQ is never blocked or dropped: frames that
    arrive while ``max_pending`` batches are still waiting are not classified (counted as
    ``skipped``), and once two batches of input are waiting the IQ is let through
    without waiting; results that come back after their samples have left
    still go out as messages, but their tags are dropped (counted as ``late``).  ``overload='block'`` classifies every frame inside work()
    and applies back-pressure instead (files, benchmarks, offline runs): whole batches where
    more than one is waiting, the IQ copied on and each batch's results published while the
    next batch's stage 1 runs.

    Args:
        model: model directory or model.json ('' for the shipped amc_ee model).
        threshold: exit threshold T on normalised entropy in [0, 1]; < 0 uses the model's default.
        every_n: classify every Nth frame (1 = all).
        provider: ONNX Runtime execution provider, 'cpu' or 'cuda' (no silent fallback).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch).
        batch_frames: the most frames per inference batch (a slow stream is classified as it arrives).
        overload: 'skip' (live radios) or 'block' (offline: classify everything).
        max_pending: batches that may wait for inference before frames are skipped.
        batch_rate: at most this many ``batch`` messages a second (0: one per inference
            batch).  Batches that finish faster are merged into one message: a display
            needs no more, and every message costs the GIL a handler thread must take.
            The batches merged in the last 1/batch_rate s before a finite stream ends go
            out when the block stops; use 0 where every batch must arrive before that.
    """

    def __init__(self, model="", threshold=-1.0, every_n=1, provider="cpu", threads=2, batch_frames=512,
                 overload="skip", max_pending=4, batch_rate=30.0):
        gr.sync_block.__init__(self, name="greatai_amc_classifier", in_sig=[np.complex64], out_sig=[np.complex64])
        if int(batch_frames) < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.engine = EarlyExitEngine(model, None if float(threshold) < 0 else threshold, provider, int(threads))
        self.L = self.engine.frame_length
        self.set_every_n(every_n)
        self.batch_frames = int(batch_frames)
        self.worker = runtime.InferenceWorker(self.engine.classify, max_pending=max_pending, policy=overload,
                                              name="greatai-amc")
        # 'block' needs no second thread: inference runs inside work() (onnxruntime releases
        # the GIL and GNU Radio's thread-per-block scheduler already overlaps the neighbours)
        self.sync = overload == "block"
        # In 'skip' mode the buffer must outlast the pending queue: if it filled first, the
        # held-back output would block the source instead of frames being skipped.  In
        # 'block' mode four batches let the source refill while a batch is classified (with
        # two, work() waited for it after each batch: 2-4 % of the throughput).
        self._hist = size_for_batches(self, self.L, self.batch_frames, 4 if self.sync else int(max_pending) + 2)
        # past two batches of waiting input (inference at least a batch behind) the IQ is
        # released without waiting for results
        self._release_backlog = 2 * self.L * self.batch_frames
        self.message_port_register_out(pmt.intern("classification"))
        self.message_port_register_out(pmt.intern("metrics"))
        self.message_port_register_out(pmt.intern("batch"))
        self._classes_pmt = pmt.to_pmt(list(self.engine.classes))
        if float(batch_rate) < 0:
            raise ValueError(f"batch_rate must be >= 0 messages/s (0 = every batch), got {batch_rate}")
        self._feed_interval = 1.0 / float(batch_rate) if float(batch_rate) > 0 else 0.0
        self._feed = []           # (offsets, result) of batches not yet sent on 'batch'
        self._feed_sent = -1e9
        self._next_frame = 0
        self.counts = {"frames": 0, "submitted": 0, "classified": 0, "skipped": 0, "invalid": 0,
                       "exit1": 0, "exit2": 0, "errors": 0, "late": 0}
        self._k = {k: pmt.intern(k) for k in ("label", "confidence", "exit", "offset", "probs", "entropy",
                                               "status", "amc", "frames", "classified", "skipped", "invalid",
                                               "exit1", "exit2", "errors", "late", "exit1_share", "classification",
                                               "metrics", "batch", "classes")}
        names = self.engine.classes + ["INVALID"]
        self._label_pmt = [pmt.intern(n) for n in names]
        self._status_pmt = [pmt.intern(s) for s in runtime.STATUS_NAMES]
        self._tag_cache = {}     # (label, exit, status, confidence in 0.001) key -> tag PMT dict
        self._last_metrics = time.monotonic()

    # ---- runtime setters / getters (GRC callbacks) ----
    def set_threshold(self, threshold):
        t = float(threshold)
        self.engine.set_threshold(self.engine.meta.get("default_threshold", 0.3) if t < 0 else t)

    def threshold(self):
        return self.engine.threshold

    def set_every_n(self, every_n):
        n = int(every_n)
        if n < 1:
            raise ValueError(f"every_n must be >= 1, got {every_n}")
        self.every_n = n

    def skipped(self):
        return self.counts["skipped"]

    def metrics(self):
        return dict(self.counts)

    # ---- scheduler ----
    def stop(self):
        return stop_steps(self, lambda: self._publish(self.worker.drain(timeout=5.0), tags=False),  # no tags here
                          lambda: self._flush_feed(force=True), self.worker.close, self._publish_metrics)

    def work(self, input_items, output_items):
        r = self.nitems_read(0)
        first = max(self._next_frame, -(-r // self.L))

        def failed(n):              # the call's frames count as errors
            self._next_frame = max(self._next_frame, (r + n) // self.L)
            self.counts["errors"] += max(0, (r + n) // self.L - first)
            return f"{self.counts['errors']} frames in error so far"
        return guarded_passthrough(self, self._work, input_items, output_items, self._hist, failed)

    def _work(self, input_items, output_items):
        inp, out = input_items[0][self._hist:], output_items[0]
        n, L = len(out), self.L
        r = self.nitems_read(0)
        first = max(self._next_frame, -(-r // L))
        last = (r + n) // L
        # Back-pressure mode passes all n samples and classifies batch after batch here:
        # the copy and the previous batch's results are published while the next batch's
        # stage 1 runs (on the other cores where the session is sharded).
        copied, todo = [], []

        def side_work():
            if not copied:
                out[:n] = inp[:n]
                copied.append(True)
            while todo:
                self._publish([todo.pop(0)])
        if last > first:
            k0 = first + (-first) % self.every_n
            sel = np.arange(k0, last, self.every_n)
            B = self.batch_frames
            if self.sync and len(sel) > B:
                # back-pressure mode: whole batches; the frames left over wait for the next
                # call with more input (a last short batch still goes when the stream ends)
                sel = sel[:len(sel) // B * B]
                last = int(sel[-1]) + 1
                n = last * L - r
                chunks = np.split(sel, len(sel) // B)
            else:
                # live mode, or less than a batch: near-equal chunks of about batch_frames
                # (0.67x to 1.5x): a leftover of a frame or two would otherwise make a batch
                # of its own and pay a whole run's overhead
                chunks = np.array_split(sel, max(1, round(len(sel) / B))) if len(sel) else []
            self.counts["frames"] += last - first
            for idx in chunks:
                local = idx[0] * L - r
                if self.every_n == 1:
                    frames = inp[local:local + len(idx) * L].reshape(len(idx), L)
                    if not self.sync:   # the worker reads it later, after GNU Radio reuses the buffer
                        frames = frames.copy()
                else:
                    frames = inp[(idx * L - r)[:, None] + np.arange(L)]
                if self.sync:           # back-pressure mode: classify right here, in order
                    self.counts["submitted"] += len(idx)
                    done = self._run_sync(int(idx[0]) * L, idx * L, frames, side_work)
                    side_work()     # no-op unless the batch failed before stage 1 ran
                    todo.append(done)
                elif self.worker.submit(int(idx[0]) * L, idx * L, frames):
                    self.counts["submitted"] += len(idx)
                else:
                    self._skip(len(idx))
            self._next_frame = last
            if self.sync:
                side_work()         # the last batch's results
        self._publish(self.worker.pop_done())
        limit = n
        while True:
            key = self.worker.oldest_pending_key()
            if key is None:
                break
            limit = min(n, key - r)
            if limit > 0:
                break
            if n >= self._release_backlog:
                # inference is behind: let the IQ go on rather than block the source.  The
                # pending frames' results still go out as messages; their tags would land
                # behind the samples already passed, so they are dropped (counted as 'late').
                # The newest batch of samples is kept back, so work() is always called again
                # (even after the source has finished) and publishes the last results while
                # the flowgraph still delivers messages, not in stop().
                limit = n - self.L * self.batch_frames
                break
            self.worker.wait_any_done(timeout=0.5)
            self._publish(self.worker.pop_done())
        if not copied:
            out[:limit] = inp[:limit]
        self._flush_feed()
        now = time.monotonic()
        if now - self._last_metrics >= 1.0:
            self._last_metrics = now
            self._publish_metrics()
        return limit

    def _run_sync(self, key, offsets, frames, during=None):
        try:
            return key, offsets, self.engine.classify(frames, during=during), None
        except Exception as e:
            return key, offsets, None, e

    def _skip(self, k):
        self.counts["skipped"] += k
        log_every(self, "skip", 5.0, f"inference cannot keep up: {self.counts['skipped']} frames skipped so far "
                  "(IQ still passes through); raise every_n or threads, or use overload='block'")

    def _publish(self, done, tags=True):
        if not done:
            return
        k = self._k
        want_msgs = has_subscribers(self, "classification")
        want_batch = has_subscribers(self, "batch")
        for key, offsets, res, err in done:
            if err is not None:
                self.counts["errors"] += len(offsets)
                self.logger.error(f"inference failed for {len(offsets)} frames at offset {key}: {err}")
                continue
            ok = res.status == runtime.STATUS_OK
            n_ok = int(ok.sum())
            self.counts["classified"] += n_ok
            self.counts["invalid"] += len(ok) - n_ok
            self.counts["exit1"] += int(np.count_nonzero(res.exit == 1))
            self.counts["exit2"] += int(np.count_nonzero(res.exit == 2))
            if n_ok < len(ok):      # at most one line per 5 s: a silent receiver sends zeros for ever
                bad = np.nonzero(~ok)[0]
                log_every(self, "invalid", 5.0, f"{self.counts['invalid']} frame(s) not classified so far; latest: "
                          + ", ".join(f"offset {int(offsets[i])} ({runtime.STATUS_NAMES[res.status[i]]})"
                                      for i in bad[:4]) + (" ..." if len(bad) > 4 else ""))
            if want_batch:
                self._feed.append((offsets, res))
            if not (tags or want_msgs):
                continue
            # tag dicts are cached per (label, exit, status, confidence to 0.001): per frame
            # this loop is one dict lookup and one add_item_tag
            cq = np.rint(res.confidence * 1000).astype(np.int64)
            keys = (((res.label + 1) * 3 + res.exit) * 3 + res.status) * 1001 + cq
            keys, labels, exits, status, cq = (a.tolist() for a in (keys, res.label, res.exit, res.status, cq))
            offs = offsets.tolist()
            cache, k_amc = self._tag_cache, k["amc"]
            written = self.nitems_written(0)
            if tags and offs and offs[0] < written:
                late = int(np.count_nonzero(offsets < written))
                self.counts["late"] += late
            missing = set(keys).difference(cache)
            if tags and not want_msgs and not missing and offs[0] >= written:
                add, get = self.add_item_tag, cache.__getitem__      # the common case, kept tight
                for off, key in zip(offs, keys):
                    add(0, off, k_amc, get(key))
                continue
            for i, off in enumerate(offs):
                tag = cache.get(keys[i])
                if tag is None:
                    if len(cache) > 100000:
                        cache.clear()
                    tag = cache[keys[i]] = dict_from((
                        (k["label"], self._label_pmt[labels[i]]), (k["exit"], pmt.from_long(exits[i])),
                        (k["status"], self._status_pmt[status[i]]), (k["confidence"], pmt.from_float(cq[i] / 1000))))
                if tags and off >= written:
                    self.add_item_tag(0, off, k_amc, tag)
                if want_msgs:
                    msg = pmt.dict_add(tag, k["confidence"], pmt.from_float(float(res.confidence[i])))
                    msg = pmt.dict_add(msg, k["offset"], pmt.from_uint64(off))
                    msg = pmt.dict_add(msg, k["probs"], pmt.init_f32vector(len(res.probs[i]), res.probs[i]))
                    msg = pmt.dict_add(msg, k["entropy"], pmt.from_float(float(res.entropy[i])))
                    self.message_port_pub(k["classification"], msg)
        self._flush_feed()

    def _flush_feed(self, force=False):
        """Send the batches waiting for the ``batch`` port as one message, at most
        ``batch_rate`` times a second (always when ``force``)."""
        if not self._feed:
            return
        now = time.monotonic()
        if not force and now - self._feed_sent < self._feed_interval:
            return
        self._feed_sent = now
        feed, self._feed = self._feed, []
        self.message_port_pub(self._k["batch"], self._batch_msg(
            np.concatenate([f[0] for f in feed]), *(np.concatenate([getattr(f[1], a) for f in feed])
                                                    for a in ("label", "exit", "confidence", "probs", "status"))))

    def _batch_msg(self, offsets, label, exit_, confidence, probs, status):
        """One PMT dict of vectors for one or more batches (for displays and other high-rate consumers)."""
        ok = status == runtime.STATUS_OK
        mean = probs[ok].mean(axis=0) if ok.any() else np.zeros(probs.shape[1], np.float32)
        return dict_from((
            (self._k["offset"], pmt.init_u64vector(len(offsets), offsets.astype(np.uint64).tolist())),
            (self._k["label"], pmt.init_s32vector(len(offsets), label.astype(np.int32).tolist())),
            (self._k["exit"], pmt.init_u8vector(len(offsets), exit_.tolist())),
            (self._k["confidence"], pmt.init_f32vector(len(offsets), confidence.tolist())),
            (self._k["probs"], pmt.init_f32vector(len(mean), mean.astype(np.float32).tolist())),
            (self._k["classes"], self._classes_pmt)))

    def _publish_metrics(self):
        c = self.counts
        share = c["exit1"] / max(1, c["exit1"] + c["exit2"])
        items = [(self._k[name], pmt.from_uint64(int(c[name]))) for name in
                 ("frames", "classified", "skipped", "invalid", "exit1", "exit2", "errors", "late")]
        items.append((self._k["exit1_share"], pmt.from_double(share)))
        self.message_port_pub(self._k["metrics"], dict_from(items))
