"""Writer-style augmentation on feature frames agrees with the feature extractor."""
import numpy as np

from runtime.features import extract
from runtime.ink import load_corpus
from training.augment import JUMP, random_shear_stretch, shear_stretch
from conftest import FIXTURES

WORDS = FIXTURES / "train" / "unipen_words_48.npz"


def _batch(frames):
    t = max(len(f) for f in frames)
    x = np.zeros((len(frames), t, 7), np.float32)
    for k, f in enumerate(frames):
        x[k, :len(f)] = f
    return x, np.array([len(f) for f in frames])


def test_identity_reproduces_the_extractors_frames_including_turning_angles():
    corpus = load_corpus(WORDS)
    frames = [extract(corpus.points(i)) for i in range(12)]
    x, lens = _batch(frames)
    y = shear_stretch(x, lens, np.zeros(len(lens)), np.ones(len(lens)))
    # the turning angles are recomputed, not copied: this checks the recomputation rule
    np.testing.assert_allclose(y, x, atol=2e-5)


def _two_lines():
    # a 45-degree stroke, a pen-up, a vertical stroke; densely sampled
    a = np.linspace(0.0, 10.0, 200)
    first = np.stack([a, a, np.zeros_like(a), np.zeros_like(a)], 1)
    first[-1, 3] = 1.0
    second = np.stack([np.full_like(a, 20.0), a, np.zeros_like(a), np.zeros_like(a)], 1)
    pts = np.concatenate([first, second])
    pts[:, 2] = np.arange(len(pts)) * 0.005
    return pts


def test_shear_matches_the_extractor_on_sheared_ink():
    pts = _two_lines()
    s, a = 0.3, 1.2
    sheared = pts.copy()
    sheared[:, 0] = a * pts[:, 0] + s * pts[:, 1]
    want = extract(sheared)
    orig = extract(pts)
    got = shear_stretch(*_batch([orig]), np.array([s]), np.array([a]))[0]
    # y does not move, so the ink scale and y_rel are unchanged and the jump frame is exact
    jw, jg = np.flatnonzero(want[:, JUMP] > 0.5), np.flatnonzero(got[:, JUMP] > 0.5)
    assert len(jw) == len(jg) == 1
    np.testing.assert_allclose(got[jg[0], :4], want[jw[0], :4], atol=1e-4)
    # in-stroke frames point along the transformed lines and keep their length (one step)
    for seg_w, seg_g, seg_o in ((want[:jw[0]], got[:jg[0]], orig[:jg[0]]),
                                (want[jw[0] + 1:], got[jg[0] + 1:], orig[jg[0] + 1:])):
        dw = seg_w[1:-1, :2].mean(0)
        dg = seg_g[1:-1, :2].mean(0)
        np.testing.assert_allclose(dg / np.linalg.norm(dg), dw / np.linalg.norm(dw), atol=1e-3)
        # (equal before the per-component log compression, which only touches steps over 1)
        np.testing.assert_allclose(np.linalg.norm(seg_g[:, :2], axis=1), np.linalg.norm(seg_o[:, :2], axis=1),
                                   atol=5e-3)


def test_random_draws_cover_the_range_and_keep_padding_zero():
    corpus = load_corpus(WORDS)
    x, lens = _batch([extract(corpus.points(i)) for i in range(6)])
    u = np.random.default_rng(0).random((6, 2))
    y = random_shear_stretch(x, lens, 0.3, 0.2, u)
    assert y.dtype == np.float32 and y.shape == x.shape
    for k, n in enumerate(lens):
        assert not y[k, n:].any()
        assert np.array_equal(y[k, :n, 2], x[k, :n, 2])  # flags untouched
        assert np.array_equal(y[k, :n, 3], x[k, :n, 3])  # y_rel untouched
    assert not np.allclose(y, x)
