"""PMT helpers shared by the gr-greatai blocks (not a block)."""
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
