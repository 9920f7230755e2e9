"""The synthetic handwriting generator: fonts, determinism, timing, config checks, features."""
import os
import string

import numpy as np
import pytest

from runtime.features import NUM_FEATURES, extract
from runtime.ink import load_corpus
from training.fonts import FALLBACK_FONT, FONT_DIR, FONT_SPECS, load_font
from training.synthetic import AugmentConfig, SynthConfig, SyntheticInk, TextSampler, run

VISIBLE = [c for c in string.printable if c.isprintable() and c != " "]


def test_every_shipped_font_has_its_licence_beside_it():
    for spec in FONT_SPECS.values():
        assert os.path.exists(os.path.join(FONT_DIR, spec.file)), spec.file
        licence = "HERSHEY-LICENSE.txt" if spec.file.endswith(".jhf") else "OFL.txt"
        assert os.path.exists(os.path.join(FONT_DIR, licence)), licence


def test_fonts_are_y_down_and_in_x_height_units():
    for name in FONT_SPECS:
        font = load_font(name)
        x = np.concatenate(font.glyphs["x"].strokes)
        tall = np.concatenate(font.glyphs["l"].strokes)
        deep = np.concatenate(font.glyphs["p"].strokes)
        assert tall[:, 1].min() < -1.2, name  # an ascender rises above the x-height (negative y)
        assert deep[:, 1].max() > 0.3, name  # a descender goes below the baseline
        assert -1.3 < x[:, 1].min() < -0.7, name


def test_every_visible_ascii_character_has_ink_in_every_font_or_the_fallback():
    fallback = load_font(FALLBACK_FONT)
    for char in VISIBLE:
        assert fallback.glyphs[char].strokes, f"fallback lacks {char!r}"
    for name in FONT_SPECS:
        generator = SyntheticInk(SynthConfig(fonts=(name,)), seed=1)
        for char in VISIBLE:
            points = generator.render(char, seed=0, font=name)
            assert len(points) >= 1 and points[-1, 3] == 1.0, (name, char)
            extent = np.ptp(points[:, :2], axis=0).max() if len(points) > 1 else 0.0
            assert extent > 0 or char in ".'`,:;!|", (name, char)  # dots may be one sample


def test_sample_is_deterministic_per_seed_and_index():
    a = SyntheticInk(SynthConfig(), seed=7)
    b = SyntheticInk(SynthConfig(), seed=7)
    for index in (0, 5, 123):
        pa, ta = a.sample(index)
        pb, tb = b.sample(index)
        assert ta == tb
        np.testing.assert_array_equal(pa, pb)
    # order of access does not matter (what DataLoader workers need)
    np.testing.assert_array_equal(b.sample(5)[0], SyntheticInk(SynthConfig(), seed=7).sample(5)[0])
    first_two = [text for _, text in zip(range(2), (t for _, t in a))]
    assert first_two == [a.sample(0)[1], a.sample(1)[1]]


def test_same_text_differs_between_seeds_and_indices_differ():
    generator = SyntheticInk(SynthConfig(), seed=0)
    one = generator.render("handwriting", seed=1, font="hershey-cursive")
    two = generator.render("handwriting", seed=2, font="hershey-cursive")
    assert one.shape != two.shape or not np.allclose(one, two)
    assert SyntheticInk(SynthConfig(), seed=0).sample(0)[1] != SyntheticInk(SynthConfig(), seed=1).sample(0)[1]


def test_points_have_pen_up_marks_monotone_time_and_the_configured_rate():
    low, high = 60.0, 200.0
    config = SynthConfig(augment=AugmentConfig(sample_rate_hz=(low, high)))
    generator = SyntheticInk(config, seed=3)
    for index in range(20):
        points, text = generator.sample(index)
        assert points.shape[1] == 4 and points.dtype == np.float64
        assert np.all(np.isfinite(points))
        assert set(np.unique(points[:, 3])) <= {0.0, 1.0}
        assert points[-1, 3] == 1.0
        assert np.all(np.diff(points[:, 2]) > 0)
        assert np.all(points[:, :2] >= 0)
        in_stroke = np.diff(points[:, 2])[points[:-1, 3] == 0]
        assert len(in_stroke) > 0
        # one device clock per sample: every in-stroke step is 1/rate for a rate in the bounds
        rate = 1.0 / np.median(in_stroke)
        assert low - 1e-6 <= rate <= high + 1e-6
        np.testing.assert_allclose(in_stroke, 1.0 / rate, rtol=1e-6)
        # pen-up gaps are longer than a clock tick
        gaps = np.diff(points[:, 2])[points[:-1, 3] == 1]
        assert np.all(gaps > 1.0 / rate)


def test_size_follows_the_configured_x_height():
    small = SyntheticInk(SynthConfig(augment=AugmentConfig(x_height_mm=(1.0, 1.0))), seed=0)
    large = SyntheticInk(SynthConfig(augment=AugmentConfig(x_height_mm=(5.0, 5.0))), seed=0)
    ps = small.render("mmmm", seed=4, font="hershey-futura")
    pl = large.render("mmmm", seed=4, font="hershey-futura")
    assert 4.0 < np.ptp(pl[:, 1]) / np.ptp(ps[:, 1]) < 6.0


def test_output_runs_through_the_feature_pipeline():
    generator = SyntheticInk(SynthConfig(kind="word"), seed=11)
    for index in range(5):
        points, _ = generator.sample(index)
        frames = extract(points)
        assert frames.shape[1] == NUM_FEATURES and len(frames) > 0
        assert np.all(np.isfinite(frames))


def test_texts_cover_printable_ascii_cases_and_numbers():
    sampler = TextSampler(SynthConfig())
    rng = np.random.default_rng(0)
    lines = [sampler.line(rng, 8) for _ in range(1500)]
    seen = set("".join(lines))
    assert set(VISIBLE) | {" "} <= seen, sorted(set(VISIBLE) - seen)
    assert all(set(line) <= set(string.printable) - set("\t\n\r\x0b\x0c") for line in lines)
    assert any(line.isupper() for line in lines)
    assert sum(line[0].isupper() for line in lines) > len(lines) / 2


def test_word_kind_gives_one_token():
    generator = SyntheticInk(SynthConfig(kind="word"), seed=2)
    texts = [generator.sample(i)[1] for i in range(30)]
    assert all(" " not in t for t in texts)


@pytest.mark.parametrize("kwargs, field", [
    (dict(slant_deg=(30.0, 10.0)), "slant_deg"),
    (dict(sample_rate_hz=(0.0, 100.0)), "sample_rate_hz"),
    (dict(x_height_mm=(2.0,)), "x_height_mm"),
    (dict(glyph_scale_jitter=-0.1), "glyph_scale_jitter"),
    (dict(elastic_warp=float("nan")), "elastic_warp"),
    (dict(join_probability=(0.5, 1.5)), "join_probability"),
])
def test_bad_augment_config_raises_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(kind="paragraph"), "kind"),
    (dict(words_per_line=(5, 2)), "words_per_line"),
    (dict(fonts=("comic-sans",)), "fonts"),
    (dict(units_per_mm=0.0), "units_per_mm"),
])
def test_bad_synth_config_raises_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SynthConfig(**kwargs)


def test_cli_writes_a_corpus_and_a_picture(tmp_path):
    from runtime.app.cli import build_parser

    out, png = tmp_path / "synth.npz", tmp_path / "synth.png"
    args = build_parser(only="synth").parse_args(
        ["synth", "--out", str(out), "--count", "3", "--seed", "4", "--kind", "word", "--png", str(png)])
    assert run(args) == 0
    corpus = load_corpus(out)
    assert len(corpus) == 3
    points, text = SyntheticInk(SynthConfig(kind="word"), seed=4).sample(1)
    assert corpus[1].text == text
    np.testing.assert_allclose(corpus.points(1), points.astype(np.float32))
    assert corpus[1].units_per_mm == 100.0
    assert png.stat().st_size > 1000
