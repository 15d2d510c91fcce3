"""PMT and buffer helpers shared by the gr-greatai blocks (not a block)."""
import numpy as np
import pmt


def to_python(msg):
    """PMT (dict, pair, vector, scalar) -> plain Python/numpy for JSON."""
    if pmt.is_dict(msg):
        out = {}
        items = pmt.dict_items(msg)
        for i in range(pmt.length(items)):
            kv = pmt.nth(i, items)
            out[str(to_python(pmt.car(kv)))] = to_python(pmt.cdr(kv))
        return out
    for kind in ("u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "c32", "c64"):
        if getattr(pmt, f"is_{kind}vector")(msg):
            return np.asarray(getattr(pmt, f"{kind}vector_elements")(msg))
    if pmt.is_vector(msg):
        return [to_python(pmt.vector_ref(msg, i)) for i in range(pmt.length(msg))]
    return pmt.to_python(msg)


def dict_from(items):
    """Build a PMT dict from (pmt_key, pmt_value) pairs."""
    d = pmt.make_dict()
    for k, v in items:
        d = pmt.dict_add(d, k, v)
    return d


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
