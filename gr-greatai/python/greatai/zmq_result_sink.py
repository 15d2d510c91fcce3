import pmt
from gnuradio import gr

from greatai.results import ResultPublisher, DEFAULT_ADDRESS

from .codec import to_python


class zmq_result_sink(gr.basic_block):
    """Publish every message it receives as one JSON object on a ZMQ PUB socket.

    Non-blocking: past the high-water mark ZMQ drops results for a slow subscriber, so a
    slow or absent subscriber never stalls the flowgraph.  ``greatai listen ADDRESS`` prints them.

    Args:
        address: ZMQ bind address, e.g. tcp://127.0.0.1:5556 or tcp://*:5556.
        hwm: send high-water mark (messages queued per subscriber).
    """

    def __init__(self, address=DEFAULT_ADDRESS, hwm=1000):
        gr.basic_block.__init__(self, name="greatai_zmq_result_sink", in_sig=None, out_sig=None)
        self.pub = ResultPublisher(address, hwm)
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        try:
            obj = to_python(msg)
        except Exception as e:  # never let one odd message take the flowgraph down
            self.logger.error(f"cannot convert message to JSON, dropped: {e}")
            return
        if not isinstance(obj, dict):
            obj = {"value": obj}
        self.pub.publish(obj)

    def address(self):
        return self.pub.address

    def sent(self):
        return self.pub.sent

    def close(self):
        self.pub.close()

    def __del__(self):
        try:
            self.pub.close()
        except Exception:
            pass
