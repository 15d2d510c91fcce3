"""Scheduler helpers shared by the gr-greatai blocks (not a block): buffer sizing,
subscriber checks, throttled logging, guarded work() and stop().  PMT conversion is in
:mod:`codec`."""
import numpy as np
import pmt

from greatai import procmem


def has_subscribers(block, port: str) -> bool:
    subs = block.message_subscribers(pmt.intern(port))
    return pmt.length(subs) > 0 if pmt.is_pair(subs) or pmt.is_vector(subs) else False


def size_for_batches(block, frame_length: int, batch_frames: int, batches: int) -> int:
    """Let a sync block see ``batch_frames`` whole frames per work() call.

    GNU Radio sizes the buffer feeding a block from its output multiple and history only
    (default 32 kB = 4 frames), which would cap batches at a few frames.  A long history
    makes the upstream buffer hold ``batches`` whole batches; work() must skip the
    returned number of leading input samples (``input_items[0][hist:]``).
    """
    hist = int(batches) * int(frame_length) * int(batch_frames)
    block.set_output_multiple(int(frame_length))
    block.set_history(hist + 1)
    # work() sees at most what fits in its output buffer too: make that as large
    block.set_min_output_buffer(hist + 2 * int(frame_length) * int(batch_frames))
    return hist


def log_every(block, key: str, seconds: float, text: str, level: str = "warn"):
    """Log ``text`` through the block's logger at most once every ``seconds`` per ``key``
    (for conditions that can repeat on every work() call)."""
    import time
    last = block.__dict__.setdefault("_log_every_last", {})
    now = time.monotonic()
    if now - last.get(key, -1e9) >= seconds:
        last[key] = now
        getattr(block.logger, level)(text)


def stop_steps(block, *steps):
    """Run a block's stop() steps, each even if an earlier one failed, logging failures.
    An exception out of stop() would abort the whole process (GNU Radio's thread calls
    std::terminate), taking every other block and a half-written file with it."""
    import traceback
    for step in steps:
        try:
            step()
        except Exception:
            block.logger.error(f"stop: {getattr(step, '__name__', 'step')} failed:\n{traceback.format_exc()}")
    return True


def guarded_passthrough(block, work, input_items, output_items, hist: int, on_error):
    """``work(input_items, output_items)`` for an inline block whose output is its input.
    If it raises (a bug), the IQ still passes on, ``on_error(n)`` does the block's
    bookkeeping and returns a few words for the log, and the traceback is logged (at most
    every 5 s): an exception out of work() would end the block's thread, and the flowgraph
    would wait for it for ever."""
    import traceback
    try:
        return work(input_items, output_items)
    except Exception:
        n = len(output_items[0])
        output_items[0][:] = input_items[0][hist:hist + n]
        log_every(block, "work", 5.0, f"work() failed ({on_error(n)}); the IQ passes on:\n{traceback.format_exc()}",
                  level="error")
        return n


def end_program(block):
    """A block's time is up (e.g. result_summary's duration): where the program stops its
    flowgraph on SIGTERM, as every GRC-generated program does, ask it to, once.  Returning
    WORK_DONE alone does not end a flowgraph promptly: the blocks upstream run on until
    their output buffers fill, and blocks without a stream (message sources such as
    gr-zeromq's) never finish.  A program without such a handler is left alone."""
    import os
    import signal
    global _PROGRAM_ENDED
    if getattr(block, "_program_ended", False):
        return
    block._program_ended = True
    if callable(signal.getsignal(signal.SIGTERM)) and not _PROGRAM_ENDED:
        _PROGRAM_ENDED = True                 # once a process: a second request would re-enter the handler
        block.logger.info("time is up: stopping the flowgraph (as Ctrl-C would)")
        os.kill(os.getpid(), signal.SIGTERM)


_PROGRAM_ENDED = False


def close_display(block, panel):
    """A display's flowgraph has stopped (its stream ended): close the GUI.  Where the
    program stops on SIGTERM (GRC's generated programs do: ``tb.stop(); tb.wait()``, then
    the Qt application quits), through that, so the flowgraph's threads have all ended
    before the interpreter does; quitting the Qt loop straight away let the program exit
    while other blocks were still stopping, and now and then a block thread was torn down
    under it (SIGABRT or SIGSEGV at exit).  Elsewhere (a panel in a test or a screenshot),
    the panel quits the application itself."""
    import signal
    if callable(signal.getsignal(signal.SIGTERM)):
        end_program(block)
    else:
        panel.stream_ended()


def logger_fn(block):
    """``log(level, text)`` through the block's logger, for the pure layers' callbacks."""
    return lambda level, text: getattr(block.logger, level)(text)


def every(seconds: float):
    """A throttle for periodic work (metrics about once a second)."""
    from greatai.inline import Throttle
    return Throttle(seconds)


def message_quota(block, cap, counts, n: int, port: str) -> int:
    """How many of n per-frame ``port`` messages may go now (``cap``: an
    ``inline.RateCap``); the rest are counted as ``unpublished`` and logged (every 5 s)."""
    k = cap.allow(n)
    if k < n:
        counts["unpublished"] += n - k
        log_every(block, "quota", 5.0, f"{counts['unpublished']} per-frame '{port}' messages not sent so far: more "
                  f"than message_rate={cap.rate:g} a second; the 'batch' port carries every frame's result at any "
                  "rate (or raise message_rate)")
    return k


# ---- results computed at stop: handled, not lost --------------------------------------
# GNU Radio calls each block's stop() as that block's own thread ends, in no set order, and
# a message still queued for a block whose thread has ended is never handled.  So each
# greatai sink, in its stop(), waits (boundedly) until the model blocks feeding it have
# stopped (their last results, for the batches in flight, are published in their stop()),
# and then handles what is left in its own message queue.
import threading as _threading

_PENDING = {}                               # sink alias -> ids of started publishers feeding it
_COND = _threading.Condition()


def subscriber_names(block, port: str) -> list:
    subs = block.message_subscribers(pmt.intern(port))
    if not (pmt.is_pair(subs) or pmt.is_vector(subs)):
        return []
    return [pmt.symbol_to_string(pmt.car(pmt.nth(i, subs))) for i in range(pmt.length(subs))]


def publisher_started(block, ports):
    """A model block's start(): the flowgraph's stream buffers are faulted in (so that the
    radio's RSS is known now and does not creep as the stream reaches each buffer page and
    its second alias for the first time, see :mod:`greatai.procmem`), and the sinks on
    ``ports`` will wait for its stop()."""
    touched = procmem.prefault_shared()
    if touched["mappings"] or touched["failed"]:
        block.logger.debug(f"stream buffers faulted in: {touched['mb']} MB in {touched['mappings']} mappings"
                           + (f", {touched['failed']} unreadable" if touched["failed"] else ""))
    names = {n for p in ports for n in subscriber_names(block, p)}
    block._final_targets = names
    with _COND:
        for n in names:
            _PENDING.setdefault(n, set()).add(id(block))
    return True


def publisher_stop(block, *steps):
    """A model block's stop(): ``steps`` (publishing the last results), then the sinks
    waiting for it are released."""
    def release():
        with _COND:
            for n in getattr(block, "_final_targets", ()):
                _PENDING.get(n, set()).discard(id(block))
            _COND.notify_all()
    return stop_steps(block, *steps, release)


def drain_at_stop(block, port: str, handle, timeout: float) -> int:
    """A greatai sink's stop(): wait (at most ``timeout``) until the blocks feeding it have
    stopped, then pass every message left in its queue on ``port`` to ``handle``."""
    with _COND:
        _COND.wait_for(lambda: not _PENDING.get(block.alias()), timeout)
    bb, key, n = block.to_basic_block(), pmt.intern(port), 0
    while bb.nmsgs(key) > 0:
        msg = bb.delete_head_nowait(key)
        if msg is None:
            break
        handle(msg)
        n += 1
    return n


# ---- models on demand --------------------------------------------------------------------
def model_slot(block, engine, make, warm=None, adopt=None):
    """A model-running block's :class:`greatai.hotswap.ModelSlot`, with its ``model`` request
    port (a path, a dict with ``path``, or a model package PDU; see ``codec.model_request``;
    handled by :meth:`HotModel.handle_model`) and its ``model_status`` port, where every
    request is answered."""
    from greatai.hotswap import ModelSlot
    from . import codec
    slot = ModelSlot(engine, make, warm, adopt, log=logger_fn(block),
                     answer=lambda reply: block.message_port_pub(codec.sym("model_status"), codec.to_pmt(reply)))
    block.message_port_register_in(pmt.intern("model"))
    block.message_port_register_out(pmt.intern("model_status"))
    block.set_msg_handler(pmt.intern("model"), block.handle_model)   # GNU Radio finds handlers by method name
    return slot


class HotModel:
    """What every model-running block with a ``slot`` (:func:`model_slot`) offers: ``engine``,
    the running model's, and ``set_model()``, a GRC callback."""

    @property
    def engine(self):
        """The running model's engine (it changes when a model is swapped in)."""
        return self.slot.engine

    def set_model(self, model):
        """Load ``model`` (a directory, its model.json, a shipped name), check it against the
        stream, and swap it in between two batches; the answer comes on ``model_status``.
        Returns the request id."""
        return self.slot.request(model, origin="set_model")

    def handle_model(self, msg):
        """The ``model`` port: any PMT at all is answered (refused if it is not a request)."""
        from . import codec
        try:
            source, rid = codec.model_request(msg)
        except Exception as e:
            self.slot.refuse(f"{msg!r:.60}", str(e))
            return
        self.slot.request(source, rid, "port")


def model_fields(engine, slot) -> dict:
    """The model identity and swap counters every metrics record carries."""
    return dict(engine.identity(), **{f"model_{k}": np.uint64(v) for k, v in slot.counts.items()})
