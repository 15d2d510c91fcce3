import numpy as np
import pmt
from gnuradio import gr

from greatai.results import DEFAULT_ADDRESS, ResultPublisher, SendQueue

from . import codec
from .pmt_util import drain_at_stop, every, log_every, stop_steps


class zmq_result_sink(gr.basic_block):
    """Publish every message it receives as one JSON object on a ZMQ PUB socket.

    Bounded and non-blocking on both sides: the message handler only puts the message on
    a queue of at most ``queue`` messages (the oldest is dropped when it is full, counted
    and logged), and a sender thread converts and publishes; past the socket's high-water
    mark ZMQ drops results for a slow subscriber.  So neither a slow subscriber nor a
    message rate above what JSON conversion manages stalls the flowgraph or grows its
    memory.  ``metrics`` carries {queued, sent, dropped, failed} about once a second and at
    stop, and the same in frames (a ``greatai-batch/1`` record counts its frames).
    ``greatai listen ADDRESS`` prints the results.

    Args:
        address: ZMQ bind address, e.g. tcp://127.0.0.1:5556 or tcp://*:5556.
        hwm: send high-water mark (messages queued per subscriber).
        queue: messages that may wait for conversion before the oldest are dropped.
    """

    def __init__(self, address=DEFAULT_ADDRESS, hwm=1000, queue=10000):
        gr.basic_block.__init__(self, name="greatai_zmq_result_sink", in_sig=None, out_sig=None)
        self.pub = ResultPublisher(address, hwm)
        self.queue = SendQueue(self._convert, self.pub.publish, queue, on_error=self._failed, frames=codec.frames_in)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("metrics"))
        self.set_msg_handler(pmt.intern("in"), self._handle)
        self._metrics_due = every(1.0)
        self._dropped_logged = 0

    def _handle(self, msg):
        self.queue.put(msg)
        if self._metrics_due.due("metrics"):
            self._report()

    @staticmethod
    def _convert(msg):
        obj = codec.to_python(msg)
        return obj if isinstance(obj, dict) else {"value": obj}

    def _failed(self, e):
        log_every(self, "convert", 5.0, f"cannot convert or send a message as JSON, dropped "
                                        f"({self.queue.failed} so far): {e}", level="error")

    def _report(self):
        c = self.queue.counts()
        if c["dropped"] > self._dropped_logged:
            self._dropped_logged = c["dropped"]
            log_every(self, "dropped", 5.0, f"{c['dropped']} results dropped so far: they arrive faster than they "
                                            "can be sent as JSON (the queue keeps the newest)")
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt({k: np.uint64(v) for k, v in c.items()}))

    def metrics(self):
        return self.queue.counts()

    def address(self):
        return self.pub.address

    def sent(self):
        return self.queue.sent

    def stop(self):
        """Wait (at most 1.5 s) for the blocks that feed it to publish their last results,
        take what is left in its message queue, send everything queued, then report."""
        return stop_steps(self, lambda: drain_at_stop(self, "in", self.queue.put, 1.5),
                          lambda: self.queue.close(timeout=1.0), self._report)

    def close(self):
        self.queue.close(timeout=1.0)
        self.pub.close()

    def __del__(self):
        try:
            self.pub.close()
        except Exception:
            pass
