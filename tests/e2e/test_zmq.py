import json
import threading
import time

import pmt
import pytest
import zmq
from gnuradio import gr

from gnuradio import greatai
from greatai.results import ResultPublisher, subscribe, dumps


ANY = "tcp://127.0.0.1:*"      # zmq picks a free port; .address tells which


def test_publisher_reaches_a_real_subscriber():
    pub = ResultPublisher(ANY)
    addr = pub.address
    got = []
    t = threading.Thread(target=lambda: got.extend(subscribe(addr, timeout=3, count=5)))
    t.start()
    deadline = time.time() + 5
    while t.is_alive() and time.time() < deadline:     # PUB/SUB: resend until the subscriber is joined
        pub.publish({"label": "QPSK", "n": len(got)})
        time.sleep(0.02)
    t.join(5)
    pub.close()
    assert len(got) == 5 and got[0]["label"] == "QPSK"


def test_absent_subscriber_never_blocks():
    pub = ResultPublisher(ANY, hwm=10)
    t = time.time()
    for i in range(20000):
        pub.publish({"i": i})
    assert time.time() - t < 5
    pub.close()


def test_slow_subscriber_never_blocks_and_loses_only_the_overflow():
    pub = ResultPublisher(ANY, hwm=5)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 5)
    sub.setsockopt_string(zmq.SUBSCRIBE, "")
    sub.connect(pub.address)
    time.sleep(0.3)                                   # joined, but not reading
    big = {"probs": list(range(2000))}
    t = time.time()
    for _ in range(5000):
        pub.publish(big)
    assert time.time() - t < 10 and pub.sent == 5000
    time.sleep(0.3)
    received = 0
    while sub.poll(200):
        sub.recv()
        received += 1
    assert 0 < received < 5000                        # the overflow was dropped, not queued forever
    sub.close(0)
    pub.close()


def test_bad_addresses_are_clear_errors():
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        ResultPublisher("localhost:5556")
    with pytest.raises(ValueError, match="cannot bind .*'tcp://256.1.1.1:5556'"):
        ResultPublisher("tcp://256.1.1.1:5556")
    first = ResultPublisher(ANY)
    with pytest.raises(ValueError, match="cannot bind .*in use"):
        greatai.zmq_result_sink(address=first.address)
    first.close()


def test_json_is_strict():
    import numpy as np
    s = dumps({"a": np.float32(1.5), "b": np.array([1, 2]), "c": float("nan")})
    assert json.loads(s) == {"a": 1.5, "b": [1, 2], "c": None}


def test_sink_block_publishes_messages_as_json():
    from gnuradio import blocks
    msg = pmt.dict_add(pmt.make_dict(), pmt.intern("label"), pmt.intern("WBFM"))
    msg = pmt.dict_add(msg, pmt.intern("offset"), pmt.from_uint64(4096))
    msg = pmt.dict_add(msg, pmt.intern("probs"), pmt.init_f32vector(2, [0.25, 0.75]))
    tb = gr.top_block()
    strobe = blocks.message_strobe(msg, 20)
    odd = blocks.message_strobe(pmt.PMT_T, 20)          # not a dict: published as {"value": true}
    sink = greatai.zmq_result_sink(address=ANY)
    addr = sink.address()
    tb.msg_connect(strobe, "strobe", sink, "in")
    tb.msg_connect(odd, "strobe", sink, "in")
    got = []
    t = threading.Thread(target=lambda: got.extend(subscribe(addr, timeout=5, count=6)))
    t.start()
    tb.start()
    t.join(10)
    tb.stop()
    tb.wait()
    assert {"label": "WBFM", "offset": 4096, "probs": [0.25, 0.75]} in got
    assert {"value": True} in got
    assert sink.sent() >= 6
    sink.pub.close()


def test_sink_under_a_flood_stays_bounded_and_counts_what_it_drops():
    """Messages arrive far faster than JSON conversion: the handler never waits, at most
    ``queue`` wait, every message is either sent or counted as dropped, and the drops are
    logged and in metrics."""
    big = pmt.dict_add(pmt.make_dict(), pmt.intern("probs"), pmt.init_f32vector(4000, [0.5] * 4000))
    sink = greatai.zmq_result_sink(address=ANY, queue=50)
    peak = 0
    for _ in range(3000):
        sink._handle(big)                            # as GNU Radio's message thread would
        peak = max(peak, sink.queue.queued)
    assert peak <= 50
    sink.queue.close()
    c = sink.metrics()
    assert c["sent"] + c["dropped"] == 3000 and c["dropped"] > 0 and c["queued"] == 0
    sink.pub.close()
    with pytest.raises(ValueError, match="queue length"):
        greatai.zmq_result_sink(address=ANY, queue=0)
