import numpy as np
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from greatai import spectrum


def reference(x, n, hop, win, avg):
    """Plain per-frame numpy STFT, the obvious way."""
    rows = []
    k = 0
    while k * hop + n <= len(x):
        rows.append(np.abs(np.fft.fft(x[k * hop:k * hop + n] * win)) ** 2 / np.sum(win) ** 2)
        k += 1
    rows = np.array(rows[:len(rows) // avg * avg]).reshape(-1, avg, n).mean(1)
    return np.fft.fftshift(10 * np.log10(rows), axes=1)


@pytest.mark.parametrize("n,hop,avg,w", [(64, 64, 1, "hann"), (64, 16, 1, "blackman"), (128, 32, 4, "rect")])
def test_power_db_matches_numpy_reference(n, hop, avg, w):
    x = (np.random.default_rng(0).standard_normal(5000) + 1j * np.random.default_rng(1).standard_normal(5000))
    x = x.astype(np.complex64)
    win = spectrum.window(w, n)
    np.testing.assert_allclose(spectrum.power_db(x, n, hop, win, avg), reference(x, n, hop, win, avg), atol=1e-3)


def test_unit_tone_reads_zero_db_at_its_bin():
    n = 256
    x = np.exp(2j * np.pi * 32 / n * np.arange(4 * n)).astype(np.complex64)
    db = spectrum.power_db(x, n, n, spectrum.window("rect", n))
    assert db.shape == (4, n)
    assert np.allclose(db[:, n // 2 + 32], 0, atol=1e-3)
    assert db[:, :n // 2 + 31].max() < -100


def test_bad_parameters():
    with pytest.raises(ValueError, match="power of two"):
        greatai.stft(fft_size=1000)
    with pytest.raises(ValueError, match="window"):
        greatai.stft(window="kaiser")
    with pytest.raises(ValueError, match="hop"):
        greatai.stft(hop=0)


@pytest.mark.parametrize("n,hop,avg", [(128, 128, 1), (128, 32, 2)])
def test_block_matches_reference_over_many_work_calls(n, hop, avg):
    x = (np.random.default_rng(2).standard_normal(40000) * (1 + 0.5j)).astype(np.complex64)
    tb = gr.top_block()
    src = blocks.vector_source_c(x)
    blk = greatai.stft(fft_size=n, hop=hop, window="hann", average=avg)
    snk = blocks.vector_sink_f(n)
    tb.connect(src, blk, snk)
    tb.run()
    got = np.array(snk.data(), np.float32).reshape(-1, n)
    # like GNU Radio's filters, history starts as zeros: vector j covers the fft_size
    # samples that end with the (j+1)-th group of hop*average new samples
    padded = np.concatenate([np.zeros(n - hop, np.complex64), x])
    ref = reference(padded, n, hop, spectrum.window("hann", n), avg)
    assert len(ref) - 4096 // n < len(got) <= len(ref)
    np.testing.assert_allclose(got, ref[:len(got)], atol=1e-3)
