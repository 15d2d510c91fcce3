"""Models over the air (seed 003, "Neural Networks in the Air"): a model's weights sent as
uncoded analog I/Q symbols, and estimated at the receiver.  numpy and onnx; no GNU Radio
(the flowgraphs that carry the symbols are in the apps: ``greatai eval air``, ``greatai demo air``).

Transmitter (:func:`encode`): every weight tensor of the model's Conv and Gemm layers (weights
and biases of both AMC stages; each tensor one "layer") is normalised by its own mean and
standard deviation and mapped to I/Q, two weights per complex symbol.  After pruning only
the non-zero weights go; their positions travel in the header as a bitmap.  The header
(shapes, per-layer means and deviations, the bitmaps) is the small, digitally protected
part: bytes with a CRC-32, BPSK, each bit repeated (:func:`header_symbols`), so it survives
where the weights are already noisy.  Symbols have unit power per real dimension (2 per
complex symbol), and so does the header's BPSK.

Receiver (:func:`decode`): the header is decoded first (majority of the repeats, CRC
checked); its known symbols give the noise variance (:func:`decode_header`).  Each
weight is then estimated by
* ``ml``: w = r;
* ``mmse`` (Gaussian prior per layer, mean mu and variance s_w^2, noise s_z^2):
  w = s_w^2/(s_w^2+s_z^2) r + mu s_z^2/(s_w^2+s_z^2);
* ``mmse_pb`` with temperatures lam, beta (0 <= lam < 1/(2 s_w^2) + 1/(2 s_z^2)):
  w - mu = s_w^2/(s_w^2+(1-2 s_w^2 lam) s_z^2) (r - mu) + s_w^2 s_z^2 beta/(s_w^2+(1-2 s_w^2 lam) s_z^2);
  the seed's formula is for a zero-mean prior, so it is applied around mu; lam = beta = 0 is
  MMSE, and a larger lam shrinks less (large weights matter more to accuracy).
Over a fading channel (:func:`with_pilots`, :func:`equalise`) a known pilot every few symbols
gives the channel's gain h, the symbols are divided by it, and each weight has its own noise
n / |h|^2: the estimators take that per weight (a weight sent in a fade is shrunk toward its
layer's mean; ML passes the fade's noise on).  The header's bits and the weight symbols are interleaved by a
permutation from a seed both ends share (:func:`interleaver`), so one fade hits weights of
many layers, a few each, not a run of one layer.
In normalised units (s_w = 1, noise n = s_z^2/s_w^2 per real dimension) these are
r, r/(1+n) and r/(1+(1-2 l) n) + b n/(1+(1-2 l) n), with l = lam s_w^2 in [0, 1/2 + 1/(2n)) and
b = beta s_w.  :func:`rebuild` writes the received weights into a copy of the model (ONNX
initializers replaced, metadata through the contract, new checksums).
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import contract

ESTIMATORS = ("ml", "mmse", "mmse_pb")
OPS = ("Conv", "Gemm")
MAGIC = b"GAIR2"
HEADER_DTYPE = np.dtype([("m", ">f4"), ("d", ">f4"), ("n", ">u4"), ("b", "u1"), ("c", "u1")])


class AirError(ValueError):
    """A header that does not decode (CRC), or a model that cannot be sent or rebuilt."""


@dataclass
class Layer:
    role: str                 # file role (stage1, stage2)
    name: str                 # ONNX initializer name
    shape: tuple
    mu: float
    sigma: float
    n: int                    # weights sent (the non-zero ones)
    mask: np.ndarray | None = None     # flat bool of the positions sent, None: all
    copies: int = 1           # times the layer is sent (small, sensitive layers: protected by repetition)
    seeded: bool = False      # the mask is drawn from the header's seed (no bitmap)


@dataclass
class Transmission:
    symbols: np.ndarray       # complex64 payload, two normalised weights per symbol
    header: bytes             # what the digital header carries (CRC appended by header_symbols)
    layers: list = field(default_factory=list)

    @property
    def weights(self) -> int:
        return int(sum(l.n for l in self.layers))


def tensors(model) -> list:
    """(role, initializer name, array) of every Conv/Gemm weight and bias of an AMC model."""
    import onnx
    from onnx import numpy_helper
    m = contract.load(model, "amc")
    out = []
    for role in contract.amc_roles(m.meta):
        g = onnx.load(str(m.file(role))).graph
        inits = {i.name: i for i in g.initializer}
        for node in g.node:
            if node.op_type in OPS:
                for name in node.input[1:3]:
                    if name in inits:
                        out.append((role, name, numpy_helper.to_array(inits[name]).astype(np.float32)))
    return out


def seeded_mask(seed: int, index: int, size: int, sparsity: float) -> np.ndarray:
    """The keep-mask (flat bool) of the ``index``-th weight layer (Conv/Gemm node, in graph
    order) pruned at random to ``sparsity`` from a seed both ends of a link share: exactly
    round(sparsity x size) positions dropped.  ``greatai compress --method magnitude
    --mask-seed`` prunes by it, and the receiver draws it again instead of reading a bitmap."""
    drop = int(round(float(np.float32(sparsity)) * size))       # as the header carries it (float32)
    keep = np.ones(int(size), bool)
    keep[np.random.default_rng([int(seed), int(index)]).permutation(int(size))[:drop]] = False
    return keep


def _mask_seed(model):
    """(seed, sparsity) of a model pruned by :func:`seeded_mask`, else (None, 0.0)."""
    p = contract.load(model, "amc").meta.get("compression", {}).get("pruning", {})
    return (int(p["mask_seed"]), float(p["mask_sparsity"])) if p.get("mask_seed") is not None else (None, 0.0)


def encode(model, protect: int = 0, copies: int = 4) -> Transmission:
    """The model's weights as analog symbols, and the header that describes them.  A layer of
    at most ``protect`` weights (the biases and the small layers, on which accuracy hangs
    most: a bias lost in a fade shifts a whole channel) is sent ``copies`` times; the receiver
    combines the copies (:func:`decode`), which a fading channel hits in different fades.
    Only the non-zero weights of a pruned model go: their positions as a bitmap in the
    header, or, for a model pruned by masks from a seed (:func:`seeded_mask`), the seed alone."""
    seed, share = _mask_seed(model)
    layers, parts, node = [], [], -1
    for role, name, w in tensors(model):
        flat = w.ravel()
        node += w.ndim > 1                      # weights (not biases) are the Conv/Gemm nodes, in order
        keep = seeded_mask(seed, node, flat.size, share) if seed is not None and w.ndim > 1 else None
        if keep is not None and np.any(flat[~keep]):
            raise AirError(f"{name}: weights outside the mask drawn from seed {seed}: not pruned by that seed")
        nz = keep if keep is not None else flat != 0
        sparse = not nz.all()
        v = flat[nz] if sparse else flat
        mu, sigma = float(v.mean()), float(v.std()) or 1.0
        c = int(copies) if v.size <= protect else 1
        layers.append(Layer(role, name, tuple(w.shape), mu, sigma, int(v.size), nz if sparse else None, c,
                            keep is not None))
        parts.append(np.tile((v - mu) / sigma, c))
    s = np.concatenate(parts).astype(np.float32)
    if len(s) % 2:
        s = np.append(s, np.float32(0))
    return Transmission(s[0::2] + 1j * s[1::2], _header_bytes(layers, seed, share), layers)


def _header_bytes(layers, seed=None, share=0.0) -> bytes:
    """The mask seed and sparsity (uint32, float32; 0, 0 without), then per layer: mean and
    deviation (float32), weights sent (uint32), where their positions come from (0: all,
    1: a bitmap follows, 2: the seed) and how many copies go; then the bitmaps.  Names and
    shapes are not sent: the receiver has the model's architecture (its graph), only the
    weights travel."""
    rec = np.array([(l.mu, l.sigma, l.n, 2 if l.seeded else int(l.mask is not None), l.copies) for l in layers],
                   dtype=HEADER_DTYPE)
    bitmaps = b"".join(np.packbits(l.mask).tobytes() for l in layers if l.mask is not None and not l.seeded)
    head = np.array([(0 if seed is None else seed, share)], dtype=[("s", ">u4"), ("p", ">f4")]).tobytes()
    return MAGIC + len(layers).to_bytes(2, "big") + head + rec.tobytes() + bitmaps


def parse_header(data: bytes, model) -> list:
    """The layers a header describes, on the receiver's copy of the architecture (``model``:
    names and shapes from its graph)."""
    if not data.startswith(MAGIC):
        raise AirError("the header does not start with the model-over-the-air magic")
    arch = tensors(model)
    k = int.from_bytes(data[5:7], "big")
    if k != len(arch):
        raise AirError(f"the header describes {k} weight tensors; the receiver's architecture has {len(arch)}")
    dt = HEADER_DTYPE
    seed, share = np.frombuffer(data[7:15], dtype=[("s", ">u4"), ("p", ">f4")])[0]
    rec = np.frombuffer(data[15:15 + k * dt.itemsize], dt)
    bitmaps, pos, out, node = data[15 + k * dt.itemsize:], 0, [], -1
    for (role, name, w), (mu, sd, n, has, copies) in zip(arch, rec):
        mask = None
        node += w.ndim > 1
        if has == 2:
            mask = seeded_mask(int(seed), node, w.size, float(share))
        elif has:
            nb = (w.size + 7) // 8
            mask = np.unpackbits(np.frombuffer(bitmaps[pos:pos + nb], np.uint8))[:w.size].astype(bool)
            pos += nb
        out.append(Layer(role, name, tuple(w.shape), float(mu), float(sd), int(n), mask, int(copies), has == 2))
    return out


# ---------------------------------------------------------------- the digital header
SYNC = (1.0 - 2.0 * np.random.default_rng(20260).integers(0, 2, 128)) * np.sqrt(2)   # known to both ends


def header_symbols(header: bytes, repeat: int) -> np.ndarray:
    """A 128-symbol sync word, then the header bytes + CRC-32 as BPSK (+-sqrt 2: the
    payload's power per symbol), each bit ``repeat`` times."""
    data = header + zlib.crc32(header).to_bytes(4, "big")
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    return np.concatenate([SYNC, np.repeat(1.0 - 2.0 * bits, int(repeat)) * np.sqrt(2)]).astype(np.complex64)


def find_start(rx: np.ndarray, search: int = 64) -> int:
    """Where the sync word starts in the received stream (a channel's filters shift it)."""
    rx = np.concatenate([np.asarray(rx[:len(SYNC) + search], np.complex64), np.zeros(len(SYNC) + search, np.complex64)])
    c = [abs(np.vdot(SYNC, rx[d:d + len(SYNC)])) if d >= 0 else abs(np.vdot(SYNC[-d:], rx[:len(SYNC) + d]))
         for d in range(-search, search + 1)]
    return int(np.argmax(c)) - search


def decode_header(rx: np.ndarray, n_bytes: int, repeat: int, gain: np.ndarray | None = None):
    """(header bytes, noise variance per real dimension) from the received header symbols
    (``n_bytes``: the header's length without CRC; ``gain``: the channel's complex gain per
    symbol after the sync word, from :func:`equalise`, for a fading channel; the repeats are
    then combined by their gains).  AirError if the CRC fails."""
    nbits = (n_bytes + 4) * 8
    rx = rx[len(SYNC):len(SYNC) + nbits * repeat]
    g = np.ones(len(rx), np.complex64) if gain is None else np.asarray(gain[:len(rx)])
    soft = (np.conj(g) * rx).real.reshape(nbits, repeat).sum(1)
    bits = (soft < 0).astype(np.uint8)
    data = np.packbits(bits).tobytes()
    body, crc = data[:n_bytes], int.from_bytes(data[n_bytes:n_bytes + 4], "big")
    if zlib.crc32(body) != crc:
        raise AirError(f"header CRC failed ({nbits} bits, each sent {repeat} times): the model cannot be rebuilt")
    sent = np.repeat(1.0 - 2.0 * bits.astype(np.float64), repeat) * np.sqrt(2)
    resid = rx - g * sent
    return body, float(np.mean(resid.real ** 2 + resid.imag ** 2) / 2)


# ---------------------------------------------------------------- fading: pilots, interleaving
PILOT = np.complex64(np.sqrt(2))          # the payload's power per symbol


def with_pilots(symbols: np.ndarray, every: int) -> np.ndarray:
    """A pilot at every ``every``-th position (the first and the last symbol included), the
    symbols in between, in order."""
    n, k = len(symbols), int(every) - 1
    if k < 1:
        raise ValueError(f"pilots need every >= 2, got {every}")
    blocks = -(-n // k)
    out = np.full(blocks * (k + 1) + 1, PILOT, np.complex64)
    data = np.zeros(blocks * k, np.complex64)
    data[:n] = symbols
    out[:-1].reshape(blocks, k + 1)[:, 1:] = data.reshape(blocks, k)
    return out


def equalise(rx: np.ndarray, n: int, every: int, smooth: int = 9):
    """(the ``n`` symbols as received, the channel's complex gain at each) from a stream made
    by :func:`with_pilots` (divide the one by the other): the gain at each pilot, averaged over ``smooth``
    neighbouring pilots (the fading is slow against the pilots' spacing; the average takes
    the noise out of the estimate), interpolated linearly between them."""
    k = int(every) - 1
    blocks = -(-n // k)
    rx = np.asarray(rx[:blocks * (k + 1) + 1], np.complex64)
    h = rx[::k + 1] / PILOT
    if smooth > 1:
        w = np.ones(int(smooth)) / int(smooth)
        pad = int(smooth) // 2
        hp = np.concatenate([np.repeat(h[:1], pad), h, np.repeat(h[-1:], pad)])
        h = np.convolve(hp.real, w, "valid") + 1j * np.convolve(hp.imag, w, "valid")
    pos = np.arange(blocks * (k + 1) + 1)
    data = pos[pos % (k + 1) != 0][:n]
    g = (np.interp(data, pos[::k + 1], h.real) + 1j * np.interp(data, pos[::k + 1], h.imag)).astype(np.complex64)
    return rx[data], np.where(np.abs(g) > 1e-6, g, 1e-6).astype(np.complex64)


def interleaver(n: int, seed: int = 20261) -> np.ndarray:
    """The permutation both ends draw from a shared seed: symbol i is sent at position perm[i]."""
    return np.random.default_rng(seed).permutation(n)


# ---------------------------------------------------------------- estimators
def estimate(r: np.ndarray, noise, estimator: str, lam=0.0, beta: float = 0.0) -> np.ndarray:
    """Normalised received weights (unit prior variance, zero mean) -> estimates; ``noise``
    the variance per real dimension (one for all, or one per weight), ``lam``/``beta`` in
    normalised units (see the module doc; ``lam`` one or one per weight)."""
    if estimator == "ml":
        return r
    if estimator == "mmse":
        return r / (1.0 + noise)
    if estimator == "mmse_pb":
        bound = 0.5 + 0.5 / np.maximum(noise, 1e-12)
        if not np.all((0.0 <= np.asarray(lam)) & (np.asarray(lam) < bound)):
            raise ValueError(f"mmse_pb needs 0 <= lam < 1/2 + 1/(2 noise) = {np.min(bound):.4g}, got {np.max(lam):.4g}")
        den = 1.0 + (1.0 - 2.0 * lam) * noise
        return r / den + beta * noise / den
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def pb_lam(noise, share: float):
    """MMSE_pb's lam at ``share`` (in [0, 1)) of its upper bound 1/2 + 1/(2 n), per weight
    where the noise is."""
    return share * (0.5 + 0.5 / np.maximum(noise, 1e-12)) * (1 - 1e-6)


def decode(rx: np.ndarray, layers: list, noise, estimator: str, lam_share: float = 0.0, beta: float = 0.0) -> list:
    """(role, name, weights) of every layer from the received payload symbols (``noise``: one
    value, or one per symbol, as :func:`equalise` leaves a fading channel's; MMSE_pb's lam
    at ``lam_share`` of its bound for each weight's noise).  A layer sent several times is
    combined first, each copy weighted by the inverse of its noise (maximum-ratio), so its
    noise is 1 / sum(1 / n_k)."""
    r = np.empty(2 * len(rx), np.float64)
    r[0::2], r[1::2] = rx.real, rx.imag
    noise = np.repeat(noise, 2) if np.ndim(noise) else noise        # a symbol's two weights
    out, pos = [], 0
    for l in layers:
        part = slice(pos, pos + l.n * l.copies)
        pos += l.n * l.copies
        x = r[part].reshape(l.copies, l.n)
        n = noise[part].reshape(l.copies, l.n) if np.ndim(noise) else np.full((l.copies, 1), float(noise))
        inv = 1.0 / np.maximum(n, 1e-12)
        x, n = (x * inv).sum(0) / inv.sum(0), 1.0 / inv.sum(0)
        n = n if np.ndim(noise) else float(n[0])
        s = estimate(x, n, estimator, pb_lam(n, lam_share), beta)
        v = (l.mu + l.sigma * s).astype(np.float32)
        if l.mask is None:
            w = v.reshape(l.shape)
        else:
            w = np.zeros(int(np.prod(l.shape)), np.float32)
            w[l.mask] = v
            w = w.reshape(l.shape)
        out.append((l.role, l.name, w))
    return out


def rebuild(model, weights: list, out, note: str = "") -> Path:
    """A copy of ``model`` in ``out`` with ``weights`` ((role, name, array) of :func:`decode`)
    in place of its initializers: a model directory any block loads (checksums renewed)."""
    import onnx
    from onnx import numpy_helper
    src = contract.load(model, "amc")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_role = {}
    for role, name, w in weights:
        by_role.setdefault(role, {})[name] = w
    meta = json.loads(json.dumps(src.meta))
    for role in contract.amc_roles(src.meta):
        m = onnx.load(str(src.file(role)))
        for init in m.graph.initializer:
            w = by_role.get(role, {}).get(init.name)
            if w is not None:
                init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
        onnx.save(m, str(out / f"{role}.onnx"))
        meta["files"][role] = contract.file_entry(out / f"{role}.onnx")
    meta["name"] = f"{src.name}_air"
    meta["description"] = f"{src.meta.get('description', '')}, received over the air" + (f" ({note})" if note else "")
    contract.write(out / "model.json", meta)
    return out / "model.json"


def predicted_mse_ratio(noise: float) -> float:
    """MSE of MMSE over that of ML for a Gaussian prior: s_w^2/(s_w^2+s_z^2) = 1/(1+n)."""
    return 1.0 / (1.0 + noise)
