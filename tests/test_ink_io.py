"""Ink file formats: IAM-OnDB, InkML (read and write), dispatch, malformed files, shared corpora."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from runtime.ink import Ink, InkFormatError, load_corpus, save_corpus
from runtime.formats.ink_io import (IamOnDbWarning, iter_corpus_samples, read_iamondb, read_iamondb_line, read_ink_file,
                            read_inkml, write_inkml)
from runtime.formats.inkml import InkChannel, parse_trace

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ink"
IAM_ROOT = FIXTURES / "iamondb_root"
MALFORMED = FIXTURES / "malformed"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is missing")
    return path


# ---------------------------------------------------------------------------------------------
# IAM-OnDB, self-made fixtures


def test_iamondb_line_reads_points_in_file_order_with_repaired_times():
    ink = read_iamondb_line(IAM_ROOT / "lineStrokes/x01/x01-000/x01-000a-01.xml", text="hello")
    assert (ink.id, ink.writer, ink.text) == ("x01-000a-01", "x01-000a", "hello")
    assert math.isnan(ink.units_per_mm)
    assert [len(s) for s in ink.strokes] == [4, 3]
    points = ink.to_points()
    np.testing.assert_array_equal(points[:, 0], [10, 12, 15, 18, 40, 41, 43])
    np.testing.assert_array_equal(points[:, 1], [20, 24, 30, 33, 20, 26, 31])
    # time="0.0" is interpolated (0.04), the backwards step 100.49 is lifted to 100.50.
    np.testing.assert_allclose(points[:, 2], [0, 0.02, 0.04, 0.06, 0.50, 0.50, 0.53], atol=1e-9)
    np.testing.assert_array_equal(points[:, 3], [0, 0, 0, 1, 0, 0, 1])


def test_read_iamondb_matches_csr_lines_and_skips_unlabelled_lines_with_a_warning():
    with pytest.warns(IamOnDbWarning, match="x01-000a-03"):
        inks = read_iamondb(IAM_ROOT)
    assert [ink.id for ink in inks] == ["x01-000a-01", "x01-000a-02", "y02-010-01"]
    assert [ink.text for ink in inks] == ["The quick fox", "jumps over", "hi there"]
    assert [ink.writer for ink in inks] == ["x01-000a", "x01-000a", "y02-010"]


def test_read_iamondb_strict_raises_on_unlabelled_lines():
    with pytest.raises(InkFormatError, match="x01-000a-03"):
        read_iamondb(IAM_ROOT, strict=True)


def test_read_iamondb_filters_by_a_split_list_file_or_ids():
    with pytest.warns(IamOnDbWarning):
        from_file = read_iamondb(IAM_ROOT, forms=IAM_ROOT / "forms.txt")
    assert [ink.id for ink in from_file] == ["x01-000a-01", "x01-000a-02"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unlabelled x01 line is filtered out before it is looked at
        only_y = read_iamondb(IAM_ROOT, forms=["y02-010"])
    assert [ink.id for ink in only_y] == ["y02-010-01"]


def test_read_ink_file_finds_the_transcription_of_a_single_line_file():
    (ink,) = read_ink_file(IAM_ROOT / "lineStrokes/x01/x01-000/x01-000a-02.xml")
    assert ink.text == "jumps over"
    (unlabelled,) = read_ink_file(IAM_ROOT / "lineStrokes/x01/x01-000/x01-000a-03.xml")
    assert unlabelled.text is None and unlabelled.num_points == 2
    (outside_root,) = read_ink_file(MALFORMED.parent / "iamondb_root/lineStrokes/y02/y02-010/y02-010-01.xml")
    assert outside_root.text == "hi there"


def test_read_ink_file_on_an_iamondb_root_applies_the_forms_filter():
    inks = read_ink_file(IAM_ROOT, forms=["y02-010"])
    assert [ink.text for ink in inks] == ["hi there"]


# ---------------------------------------------------------------------------------------------
# InkML, self-made fixtures


def test_parse_trace_decodes_the_spec_difference_example():
    xy = (InkChannel("X"), InkChannel("Y"))
    values = parse_trace("1125 18432,'23'43,\"7\"-8,3-5,+7 -3", xy, "example")
    np.testing.assert_array_equal(values, [[1125, 18432], [1148, 18475], [1178, 18510], [1211, 18540], [1251, 18567]])


def test_parse_trace_handles_specials_and_omitted_intermittent_channels():
    channels = (InkChannel("X"), InkChannel("Y"), InkChannel("S", intermittent=True))
    values = parse_trace("1 2 T, 3 4, * 5 F", channels, "example")
    np.testing.assert_array_equal(values, [[1, 2, 1], [3, 4, 1], [3, 5, 0]])


def test_inkml_groups_use_their_trace_format_difference_encoding_and_references():
    hi, there = read_inkml(FIXTURES / "inkml/w3c_groups.inkml")
    assert (hi.id, hi.text, hi.writer, hi.units_per_mm) == ("w3c_groups/w01", "hi", "w7", 1.0)
    assert (there.id, there.text) == ("w3c_groups/w02", "there")
    assert hi.has_pressure and not hi.meta["synthetic_time"]
    assert [len(s) for s in hi.strokes] == [3, 3]  # the hover trace is not ink
    x, y, t, p = np.concatenate(hi.strokes).T
    np.testing.assert_array_equal(x, [1, 2, 4, 8, 9, 10])
    np.testing.assert_array_equal(y, [10, 12, 15, 10, 11, 12])
    np.testing.assert_allclose(t, [0, 0.01, 0.02, 0.10, 0.11, 0.12], atol=1e-12)  # ms -> s
    np.testing.assert_array_equal(p, [50, 55, 60, 40, 45, 50])
    np.testing.assert_array_equal(there.strokes[0][:, :2], [[9, 5], [9, 5.5]])


def test_inkml_document_level_takes_every_pen_down_trace_and_the_document_truth():
    (doc,) = read_inkml(FIXTURES / "inkml/w3c_groups.inkml", level="document", sample_id="s1")
    assert (doc.id, doc.text, doc.num_points, len(doc.strokes)) == ("s1", "hi there", 8, 3)


def test_inkml_without_trace_format_reads_x_y_and_synthesises_time():
    (ink,) = read_inkml(FIXTURES / "inkml/default_format.inkml")
    assert (ink.id, ink.text) == ("default_format", "ok")
    assert ink.meta["synthetic_time"] and math.isnan(ink.units_per_mm)
    points = ink.to_points()
    np.testing.assert_array_equal(points[:, :2], [[0, 0], [10, 0], [10, 10], [20, 5], [25, 5]])
    # 0.01 s per point, plus one extra interval between strokes.
    np.testing.assert_allclose(points[:, 2], [0, 0.01, 0.02, 0.04, 0.05])
    np.testing.assert_array_equal(points[:, 3], [0, 0, 1, 0, 1])


def test_read_inkml_rejects_an_unknown_level():
    with pytest.raises(ValueError, match="level"):
        read_inkml(FIXTURES / "inkml/default_format.inkml", level="words")


def _random_ink(rng: np.random.Generator, ident: str, pressure: bool, units: float) -> Ink:
    strokes, t0 = [], 0.0
    for _ in range(3):
        n = int(rng.integers(2, 30))
        xy = np.round(rng.normal(0, 500, (n, 2)), 3)
        t = t0 + np.cumsum(rng.uniform(0.005, 0.02, n))
        cols = [xy, t[:, None]] + ([np.round(rng.uniform(0, 1023, (n, 1)), 3)] if pressure else [])
        strokes.append(np.hstack(cols))
        t0 = t[-1] + 0.2
    strokes[0][0, 2] = 0.0
    return Ink(strokes=strokes, text=f"text of {ident}", id=ident, writer="writer-a", units_per_mm=units)


@pytest.mark.parametrize("pressure", [False, True])
def test_write_then_read_inkml_round_trips_points_and_labels(tmp_path, pressure):
    rng = np.random.default_rng(7)
    inks = [_random_ink(rng, f"sample/{k}", pressure, units) for k, units in enumerate([39.37, math.nan, 5.0])]
    write_inkml(tmp_path / "many.inkml", inks)
    back = read_inkml(tmp_path / "many.inkml")
    assert [b.id for b in back] == [i.id for i in inks]
    for original, read in zip(inks, back):
        assert (read.text, read.writer, read.has_pressure) == (original.text, original.writer, pressure)
        assert read.units_per_mm == original.units_per_mm or (math.isnan(read.units_per_mm) and math.isnan(original.units_per_mm))
        assert [len(s) for s in read.strokes] == [len(s) for s in original.strokes]
        a, b = np.concatenate(original.strokes), np.concatenate(read.strokes)
        # Written with 3 decimals for x, y, pressure and 6 for t (see runtime.formats.inkml).
        np.testing.assert_allclose(b[:, :2], a[:, :2], rtol=0, atol=5e-4)
        np.testing.assert_allclose(b[:, 2], a[:, 2], rtol=0, atol=5e-7)
        if pressure:
            np.testing.assert_allclose(b[:, 3], a[:, 3], rtol=0, atol=5e-4)


def test_write_one_ink_as_a_document_round_trips_integer_points_exactly(tmp_path):
    ink = Ink(strokes=[np.array([[1, 2, 0.0], [3, 5, 0.01]]), np.array([[7, 1, 0.3], [8, 2, 0.31]])],
              text="a & <b>", id="one", writer="")
    write_inkml(tmp_path / "one.inkml", ink)
    (back,) = read_ink_file(tmp_path / "one.inkml")
    assert (back.id, back.text, back.writer) == ("one", "a & <b>", "")
    np.testing.assert_array_equal(back.to_points(), ink.to_points())


# ---------------------------------------------------------------------------------------------
# Dispatch and corpus iteration


def test_read_ink_file_and_iter_corpus_samples_on_a_corpus_npz(tmp_path):
    inks = read_ink_file(FIXTURES / "inkml/w3c_groups.inkml")
    save_corpus(tmp_path / "small.npz", inks, kind="word")
    again = read_ink_file(tmp_path / "small.npz")
    assert [i.id for i in again] == ["w3c_groups/w01", "w3c_groups/w02"]
    samples = list(iter_corpus_samples(tmp_path / "small.npz"))
    assert [(s.text, s.id, s.kind) for s in samples] == [("hi", "w3c_groups/w01", "word"), ("there", "w3c_groups/w02", "word")]
    assert samples[0][0].dtype == np.float32 and samples[0][0].shape == (6, 4)
    np.testing.assert_allclose(samples[0][0], inks[0].to_points(), rtol=1e-6)


def test_a_corpus_npz_written_with_byte_strings_reads_as_text(tmp_path):
    """``np.savez`` of ``bytes`` arrays stores dtype S: read as UTF-8 text, not as "b'hi'"."""
    inks = read_ink_file(FIXTURES / "inkml/w3c_groups.inkml")
    save_corpus(tmp_path / "small.npz", inks, kind="word")
    with np.load(tmp_path / "small.npz") as d:
        arrays = {k: d[k] for k in d.files}
    for name in ("texts", "ids", "writers", "kind"):
        arrays[name] = np.char.encode(arrays[name], "utf-8")
    arrays["split"] = np.array([b"val", b"train"])
    np.savez(tmp_path / "bytes.npz", **arrays)
    samples = list(iter_corpus_samples(tmp_path / "bytes.npz", split="val"))
    assert [(s.text, s.id, s.kind) for s in samples] == [("hi", "w3c_groups/w01", "word")]
    arrays["texts"] = np.array([b"\xff", b"ok"])
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InkFormatError, match="bad.npz: texts holds bytes that are not UTF-8"):
        load_corpus(tmp_path / "bad.npz")


def test_iter_corpus_samples_keeps_the_named_writers_and_refuses_an_unknown_one(tmp_path):
    inks = read_ink_file(FIXTURES / "inkml/w3c_groups.inkml")
    inks[0].writer, inks[1].writer = "anna", "ben"
    save_corpus(tmp_path / "small.npz", inks, kind="word")
    assert [s[2] for s in iter_corpus_samples(tmp_path / "small.npz", writers=["ben"])] == ["w3c_groups/w02"]
    with pytest.raises(ValueError, match="no writer named 'carl'"):
        list(iter_corpus_samples(tmp_path / "small.npz", writers=["ben", "carl"]))
    # any other format through read_ink_file: the same filter on Ink.writer
    inkml = FIXTURES / "inkml/w3c_groups.inkml"
    assert len(list(iter_corpus_samples(inkml, writers=["w7"]))) == 2
    with pytest.raises(ValueError, match="no writer named 'carl'"):
        list(iter_corpus_samples(inkml, writers=["carl"]))


def test_iter_corpus_samples_on_an_iamondb_root_with_a_forms_file():
    samples = list(iter_corpus_samples(IAM_ROOT, forms=["y02-010"]))
    assert [(s[1], s[2]) for s in samples] == [("hi there", "y02-010-01")]
    points = samples[0][0]
    assert points.dtype == np.float32 and points.shape == (3, 4) and points[-1, 3] == 1


def test_read_ink_file_rejects_unknown_kinds(tmp_path):
    (tmp_path / "ink.txt").write_text("1 2 3")
    with pytest.raises(InkFormatError, match="unknown ink file type"):
        read_ink_file(tmp_path / "ink.txt")
    with pytest.raises(InkFormatError, match="not an IAM-OnDB root"):
        read_ink_file(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_ink_file(tmp_path / "missing.inkml")


# ---------------------------------------------------------------------------------------------
# Malformed files


@pytest.mark.parametrize("name, fault", [
    ("not_xml.xml", "not well-formed XML"),
    ("point_missing_y.xml", "lacks the attribute 'y'"),
    ("point_non_numeric.xml", "non-numeric time='soon'"),
    ("no_strokes.xml", "no <Stroke>"),
    ("stroke_without_points.xml", "has no <Point>"),
    ("not_xml.inkml", "not well-formed XML"),
    ("not_ink_root.inkml", "not <ink>"),
    ("wrong_channel_count.inkml", "more than 2 values"),
    ("non_numeric.inkml", "unexpected 'a'"),
    ("no_traces.inkml", "empty ink"),
    ("empty_trace.inkml", "has no points"),
    ("undefined_context.inkml", "'#nowhere', which is not defined"),
    ("hex_values.inkml", "hexadecimal"),
    ("no_xy_channels.inkml", "lacks an X or Y channel"),
    ("unknown_x_value.inkml", "unknown"),
])
def test_malformed_files_raise_ink_format_error_naming_file_and_fault(name, fault):
    with pytest.raises(InkFormatError) as info:
        read_ink_file(MALFORMED / name)
    message = str(info.value)
    assert name in message and fault in message


def test_inkml_point_with_too_few_values_names_the_point():
    with pytest.raises(InkFormatError, match="point 2 has 1 values"):
        parse_trace("1 2, 3", (InkChannel("X"), InkChannel("Y")), "f.inkml: <trace> 1")


def test_iamondb_ascii_file_without_csr_block_raises():
    with pytest.raises(InkFormatError, match=r"z09-000a\.txt: no 'CSR:' block"):
        read_iamondb(MALFORMED / "no_csr_root")


# ---------------------------------------------------------------------------------------------
# Raw samples against their npz twins in ../shared/data


def test_iamondb_raw_sample_reproduces_the_train_npz_rows():
    root = _shared("iamondb", "raw-sample")
    corpus = load_corpus(_shared("iamondb", "train.npz"))
    row_of = {str(k): i for i, k in enumerate(corpus.ids)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every raw line has its CSR line
        inks = read_iamondb(root)
    expected = [f"a01-00{f}w-{n:02d}" for f in (1, 4) for n in range(1, 9)]
    assert [ink.id for ink in inks] == expected
    for ink in inks:
        i = row_of[ink.id]
        ref, points = corpus.points(i), ink.to_points()
        assert points.shape == ref.shape, ink.id
        np.testing.assert_array_equal(points[:, :2], ref[:, :2], err_msg=ink.id)
        np.testing.assert_array_equal(points[:, 2].astype(np.float32), ref[:, 2], err_msg=ink.id)
        np.testing.assert_array_equal(points[:, 3], ref[:, 3], err_msg=ink.id)
        assert (ink.text, ink.writer) == (str(corpus.texts[i]), str(corpus.writers[i]))


def test_imadocsen_words_raw_sample_reproduces_the_words_npz_rows():
    path = _shared("imadocsen", "raw-sample", "data", "words", "writer3", "sentence1.inkml")
    corpus = load_corpus(_shared("imadocsen", "words.npz"))
    row_of = {str(k): i for i, k in enumerate(corpus.ids)}
    inks = read_inkml(path, sample_id="writer3/sentence1")
    assert [ink.id for ink in inks] == [f"writer3/sentence1/w{k:02d}" for k in range(1, 10)]
    for ink in inks:
        i = row_of[ink.id]
        np.testing.assert_array_equal(ink.to_points().astype(np.float32), corpus.points(i), err_msg=ink.id)
        assert ink.text == str(corpus.texts[i])


def test_imadocsen_sentence_raw_sample_reproduces_the_sentences_npz_row():
    path = _shared("imadocsen", "raw-sample", "data", "sentences", "writer3", "sentence1.inkml")
    corpus = load_corpus(_shared("imadocsen", "sentences.npz"))
    i = list(corpus.ids).index("writer3/sentence1")
    for level in ("groups", "document"):  # one annotated group: both levels give the document
        (ink,) = read_inkml(path, level=level, sample_id="writer3/sentence1")
        points = ink.to_points()
        assert (len(points), len(ink.strokes)) == (3300, 31)
        np.testing.assert_array_equal(points.astype(np.float32), corpus.points(i))
        assert ink.text == str(corpus.texts[i]) == "you take out of circulation many millions of dollars"


def _check_sample_invariants(label: str, points: np.ndarray, offsets: np.ndarray) -> None:
    """Corpus invariants, vectorised over the whole file: >= 2 points, last pen-up, t non-decreasing."""
    assert points.ndim == 2 and points.shape[1] == 4, label
    lengths = np.diff(offsets)
    assert len(lengths) > 0 and lengths.min() >= 2, f"{label}: a sample has fewer than 2 points"
    assert np.all(points[offsets[1:] - 1, 3] == 1), f"{label}: a sample does not end with pen_up_after == 1"
    assert np.all(np.isin(points[:, 3], (0.0, 1.0))), f"{label}: pen_up_after is not 0/1"
    dt = np.diff(points[:, 2])
    starts = offsets[1:-1] - 1  # the diff that crosses from one sample into the next
    inside = np.ones(len(dt), dtype=bool)
    inside[starts] = False
    assert np.all(dt[inside] >= 0), f"{label}: t decreases within a sample"
    assert np.all(points[offsets[:-1], 2] == 0), f"{label}: a sample's t does not start at 0"


@pytest.mark.slow
def test_every_shared_npz_and_raw_sample_meets_the_corpus_invariants():
    root = _shared()
    npz_files = sorted(root.rglob("*.npz"))
    assert npz_files, f"no .npz under {root}"
    for path in npz_files:
        corpus = load_corpus(path)
        label = str(path.relative_to(root))
        assert len(corpus) == len(corpus.ids) == len(set(corpus.ids.tolist())), f"{label}: ids not unique"
        assert all(len(t) > 0 for t in corpus.texts.tolist()), f"{label}: an empty text"
        # the whole points array at once (load_corpus validated it); per-Ink checks would take minutes
        _check_sample_invariants(label, corpus._points, corpus.offsets)
    raw_files = sorted(root.rglob("raw-sample/**/*.inkml")) + sorted(root.rglob("raw-sample/lineStrokes/**/*.xml"))
    assert raw_files, f"no raw samples under {root}"
    for path in raw_files:
        inks = read_ink_file(path)
        label = str(path.relative_to(root))
        assert inks and all(ink.text for ink in inks), f"{label}: unlabelled"
        points = [ink.to_points() for ink in inks]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in points])])
        _check_sample_invariants(label, np.concatenate(points), offsets)


def test_an_ink_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from runtime.formats import ink_io

    path = tmp_path / "big.inkml"
    path.write_text("<ink><trace>" + ", ".join(f"{i} {i % 7}" for i in range(3000)) + "</trace></ink>")
    assert len(ink_io.read_ink_file(path)[0].to_points()) == 3000
    monkeypatch.setattr(ink_io, "MAX_INK_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(InkFormatError, match="over the"):
        ink_io.read_ink_file(path)


def test_a_long_plain_trace_is_parsed_in_pieces_exactly(tmp_path):
    """The fast path cuts the trace text every megabyte at a comma: the points are those of one pass."""
    from runtime.formats.inkml import InkChannel, parse_trace

    rng = np.random.default_rng(1)
    values = rng.integers(-10**6, 10**6, size=(150_000, 3))
    text = ",\n".join(" ".join(str(v) for v in row) for row in values)
    assert len(text) > 2 * 2**20  # at least three pieces
    channels = [InkChannel("X"), InkChannel("Y"), InkChannel("T")]
    np.testing.assert_array_equal(parse_trace(text, channels, "t"), values.astype(np.float64))
