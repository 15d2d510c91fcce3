"""The one PMT codec of gr-greatai: result records (the plain dicts of ``greatai.records``)
to PMT and back.  Every block publishes through :func:`to_pmt`, and every display and
sink decodes through :func:`to_python`; JSON is ``greatai.results.dumps`` of the same
plain dicts.  (Not a block.)

Types: dict -> PMT dict (symbol keys); numpy arrays -> the uniform vector of their dtype
(bool as u8); bool, numpy unsigned (u64), int, float, complex, str (symbol), None (nil);
lists and tuples -> PMT vectors.
"""
import numpy as np
import pmt

from greatai.records import label_names

_PMT = type(pmt.PMT_NIL)
_VECTORS = {np.dtype(t): k for t, k in ((np.uint8, "u8"), (np.int8, "s8"), (np.uint16, "u16"), (np.int16, "s16"),
                                          (np.uint32, "u32"), (np.int32, "s32"), (np.uint64, "u64"), (np.int64, "s64"),
                                          (np.float32, "f32"), (np.float64, "f64"), (np.complex64, "c32"),
                                          (np.complex128, "c64"))}
_KINDS = ("u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "c32", "c64")
_SYMBOLS = {}


def sym(name: str):
    """An interned symbol for a key or port name, cached (names are few; string values go
    through ``pmt.intern`` uncached)."""
    s = _SYMBOLS.get(name)
    if s is None:
        s = _SYMBOLS[name] = pmt.intern(name)
    return s


_SCALARS = {float: pmt.from_double, int: pmt.from_long, bool: pmt.from_bool, str: pmt.intern,
            np.uint64: lambda v: pmt.from_uint64(int(v)), np.float32: lambda v: pmt.from_double(float(v)),
            np.float64: pmt.from_double}


def to_pmt(obj):
    """A plain record (see the module doc) as PMT."""
    f = _SCALARS.get(type(obj))                    # the common scalar types, in one lookup
    if f is not None:
        return f(obj)
    if isinstance(obj, np.ndarray) and obj.ndim == 1 and obj.dtype == np.float32:
        return pmt.init_f32vector(len(obj), obj)
    if isinstance(obj, _PMT):
        return obj
    if isinstance(obj, dict):
        d = pmt.make_dict()
        for k, v in obj.items():
            d = pmt.dict_add(d, sym(str(k)), to_pmt(v))
        return d
    if isinstance(obj, np.ndarray):
        a = obj.astype(np.uint8) if obj.dtype == bool else obj
        kind = _VECTORS.get(a.dtype)
        if kind is None:
            raise TypeError(f"no PMT vector for numpy dtype {obj.dtype}")
        flat = np.ascontiguousarray(a).ravel()
        return getattr(pmt, f"init_{kind}vector")(len(flat), flat.tolist() if kind in ("u64", "s64", "s32") else flat)
    if isinstance(obj, (bool, np.bool_)):
        return pmt.from_bool(bool(obj))
    if isinstance(obj, np.unsignedinteger):
        return pmt.from_uint64(int(obj))
    if isinstance(obj, (int, np.integer)):
        return pmt.from_long(int(obj))
    if isinstance(obj, (float, np.floating)):
        return pmt.from_double(float(obj))
    if isinstance(obj, (complex, np.complexfloating)):
        return pmt.from_complex(complex(obj))
    if isinstance(obj, str):
        return pmt.intern(obj)
    if obj is None:
        return pmt.PMT_NIL
    if isinstance(obj, (list, tuple)):
        v = pmt.make_vector(len(obj), pmt.PMT_NIL)
        for i, x in enumerate(obj):
            pmt.vector_set(v, i, to_pmt(x))
        return v
    raise TypeError(f"cannot convert {type(obj).__name__} to PMT")


def extend(pmt_dict, fields: dict):
    """A PMT dict with a plain record's fields added (or replaced): cheaper than building
    the whole dict again when most of it is a cached PMT (a frame's tag)."""
    for k, v in fields.items():
        pmt_dict = pmt.dict_add(pmt_dict, sym(k), to_pmt(v))
    return pmt_dict


def to_python(msg):
    """PMT (dict, pair, vector, scalar) -> plain Python/numpy (uniform vectors as arrays)."""
    if pmt.is_dict(msg):
        out = {}
        items = pmt.dict_items(msg)
        for i in range(pmt.length(items)):
            kv = pmt.nth(i, items)
            out[str(to_python(pmt.car(kv)))] = to_python(pmt.cdr(kv))
        return out
    if pmt.is_uniform_vector(msg):
        for kind in _KINDS:
            if getattr(pmt, f"is_{kind}vector")(msg):
                return np.asarray(getattr(pmt, f"{kind}vector_elements")(msg))
    if pmt.is_vector(msg):
        return [to_python(pmt.vector_ref(msg, i)) for i in range(pmt.length(msg))]
    return pmt.to_python(msg)


def frames_in(msg) -> int:
    """How many frames' results a message carries: a batch record's ``frames`` (when it is
    one: format greatai-batch/1, and as many offsets), else 1."""
    if pmt.is_dict(msg):
        fmt = pmt.dict_ref(msg, sym("format"), pmt.PMT_NIL)
        n = pmt.dict_ref(msg, sym("frames"), pmt.PMT_NIL)
        off = pmt.dict_ref(msg, sym("offset"), pmt.PMT_NIL)
        if (pmt.is_symbol(fmt) and pmt.symbol_to_string(fmt) == "greatai-batch/1" and pmt.is_integer(n)
                and pmt.is_uniform_vector(off) and pmt.length(off) == pmt.to_long(n)):
            return pmt.to_long(n)
    return 1


def pdu_parts(msg):
    """(metadata as plain dict or None, samples as a numpy array or None) of a PDU-like
    pair; None if ``msg`` is not a pair with a uniform vector."""
    if not (pmt.is_pair(msg) and not pmt.is_dict(msg) and pmt.is_uniform_vector(pmt.cdr(msg))):
        return None
    meta, vec = pmt.car(msg), pmt.cdr(msg)
    return (to_python(meta) if pmt.is_dict(meta) else None,
            np.asarray(pmt.c32vector_elements(vec), np.complex64) if pmt.is_c32vector(vec) else None)


def command(msg):
    """(command, args) of a request message: a symbol, or a dict with ``cmd``; None if
    it is neither."""
    if pmt.is_symbol(msg):
        return pmt.symbol_to_string(msg), {}
    if pmt.is_dict(msg):
        args = to_python(msg)
        return str(args.get("cmd", "")), args
    return None


def request(msg):
    """A request message as ("pdu", (meta, samples)), ("command", (name, args)) or
    ("bad", reason): labelled IQ, a command, or neither."""
    pdu, cmd = pdu_parts(msg), command(msg)
    if pdu is not None:
        return "pdu", pdu
    if cmd is not None:
        return "command", cmd
    return "bad", (f"a message of the wrong PMT type ({msg!r:.60}): expected a symbol, a dict with 'cmd', or a PDU",)


def model_request(msg):
    """A ``model`` port message as (source, request id): a symbol (a path or shipped name), a
    dict with ``path`` (and ``id``), or a PDU (dict with ``id``, u8vector of package bytes,
    see ``greatai.hotswap.pack``).  ValueError names what came instead."""
    if pmt.is_symbol(msg):
        return pmt.symbol_to_string(msg), None
    if pmt.is_pair(msg) and not pmt.is_dict(msg):
        meta, data = pmt.car(msg), pmt.cdr(msg)
        if not pmt.is_u8vector(data):
            raise ValueError("a model package PDU carries the package as a u8vector of bytes")
        args = to_python(meta) if pmt.is_dict(meta) else {}
        return bytes(pmt.u8vector_elements(data)), args.get("id")
    if pmt.is_dict(msg):
        args = to_python(msg)
        path = args.get("path", args.get("model"))
        if not isinstance(path, str):
            raise ValueError("a model request dict needs 'path': a model directory, its model.json or a shipped name")
        return path, args.get("id")
    raise ValueError(f"a model request of the wrong PMT type ({msg!r:.60}): expected a symbol (a path), a dict with "
                     "'path', or a PDU of model package bytes")


class EngineTags:
    """Cached tag PMTs per engine: ``build(names, key)`` makes a frame's plain tag record
    from the engine's label names (``records.label_names``), and the engine's identity
    (model name and version) is added; one :class:`TagCache` for each of the last two
    engines (after a model swap, batches of both may be published)."""

    def __init__(self, build):
        self.build, self._caches = build, {}

    def lookup(self, engine, keys: list) -> list:
        cache = self._caches.get(id(engine))
        if cache is None or cache[0] is not engine:
            if len(self._caches) >= 2:
                self._caches.pop(next(iter(self._caches)))
            names, ident = label_names(engine.classes), engine.identity()
            cache = self._caches[id(engine)] = (engine, TagCache(lambda key: dict(self.build(names, key), **ident)))
        return cache[1].lookup(keys)


class TagCache:
    """PMT tag dicts built once per distinct key: ``build(key)`` makes the plain record
    (e.g. ``records.amc_tag``), and :meth:`lookup` returns the PMTs of many keys."""

    def __init__(self, build, limit: int = 100000):
        self.build, self.limit, self._cache = build, int(limit), {}

    def lookup(self, keys: list) -> list:
        cache = self._cache
        missing = set(keys).difference(cache)
        if missing:
            if len(cache) + len(missing) > self.limit:
                cache.clear()
            for k in missing:
                cache[k] = to_pmt(self.build(k))
        return [cache[k] for k in keys]


def result_tags(tags, confidence: bool = False):
    """Read result tags (``amc`` and the like: a dict with a symbol ``label``, an integer
    ``exit``, 0 if absent, and with ``confidence`` a real ``confidence``, required) in a
    few pybind calls each.  Returns (offsets, labels, exits, confidences, bad): lists,
    confidences empty unless asked, and how many tags were not such a dict."""
    offs, labels, exits, confs, bad = [], [], [], [], 0
    k_label, k_exit, k_conf = sym("label"), sym("exit"), sym("confidence")
    nil, zero = pmt.PMT_NIL, pmt.from_long(0)
    dict_ref, symbol, to_long, to_double = pmt.dict_ref, pmt.symbol_to_string, pmt.to_long, pmt.to_double
    for t in tags:
        v = t.value
        try:
            lab, ex = symbol(dict_ref(v, k_label, nil)), to_long(dict_ref(v, k_exit, nil if confidence else zero))
            c = to_double(dict_ref(v, k_conf, nil)) if confidence else None
        except Exception:           # not a result: counted, skipped
            bad += 1
            continue
        offs.append(t.offset)
        labels.append(lab)
        exits.append(ex)
        if confidence:
            confs.append(c)
    return offs, labels, exits, confs, bad
