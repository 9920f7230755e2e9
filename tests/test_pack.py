"""`inkstream pack`: a data root small enough to carry to a GPU machine, and synthetic ink read
from its word list instead of wordfreq."""
import gzip
import json

import numpy as np
import pytest

pytest.importorskip("wordfreq", reason="the pack writes wordfreq's word list (train extra)")

from runtime.ink import load_corpus  # noqa: E402
from training.data import _source_samples, _synth_config  # noqa: E402
from training.pack import COPIED, SUBSAMPLED, VOCABULARY_FILE, pack, run, write_vocabulary  # noqa: E402
from training.synthetic import SynthConfig, TextSampler  # noqa: E402


def _write_corpus(path, rows, points_per_row, rng, splits=None):
    """A corpus npz with random (poorly compressing) points, so sizes follow the rows kept."""
    pts = rng.integers(0, 30000, size=(rows * points_per_row, 4)).astype(np.float32)
    pts[:, 3] = 0
    pts[points_per_row - 1::points_per_row, 3] = 1
    arrays = dict(points=pts, offsets=np.arange(rows + 1, dtype=np.int64) * points_per_row,
                  texts=np.array([f"text {i}" for i in range(rows)]), ids=np.array([f"{path.stem}/{i}" for i in range(rows)]),
                  writers=np.array([f"w{i % 7}" for i in range(rows)]), units_per_mm=np.full(rows, np.nan, np.float32),
                  kind=np.array(["word"] * rows))
    if splits is not None:
        arrays["split"] = np.array(splits)
        arrays["quality"] = np.array(["OK"] * rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


@pytest.fixture
def data_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for name in COPIED:
        if name.endswith(".npz"):
            _write_corpus(root / name, 10, 20, rng)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(root / name, "wt") as f:
                f.write("A sentence of running text.\nAnother one.\n")
    for name in SUBSAMPLED:  # 300 train rows, 12 val rows, interleaved
        _write_corpus(root / name, 312, 50, rng, ["val" if i % 26 == 0 else "train" for i in range(312)])
    return root


def test_pack_keeps_no_segment_training_would_skip(data_root, tmp_path):
    from training.pack import read_corpus_arrays, subsample_arrays

    src = data_root / "unipen" / "text.npz"
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["quality"][1::2] = "BAD"  # every other row, val rows included
    np.savez_compressed(src, **arrays)
    kept, counts = subsample_arrays(read_corpus_arrays(src), 1.0)
    np.savez_compressed(tmp_path / "out.npz", **kept)
    out = load_corpus(tmp_path / "out.npz")
    split, quality = out.field("split"), out.field("quality")
    assert not np.any((split == "train") & (quality == "BAD"))
    assert (split == "val").sum() == 12  # validation rows are kept whatever their quality
    assert counts["train_rows"] == counts["train_rows_before"] == ((arrays["split"] == "train") & (arrays["quality"] != "BAD")).sum()


def test_pack_fits_its_budget_keeps_the_validation_rows_it_needs_and_copies_the_rest(data_root, tmp_path):
    fixed = sum((data_root / p).stat().st_size for p in COPIED)
    full = sum((data_root / p).stat().st_size for p in SUBSAMPLED)
    out = tmp_path / "pack"
    max_mb = (fixed + 60_000 + full * 0.4) / 1e6  # 60 kB for the 2,000-word list; about 40 % of UNIPEN
    info = pack(out, data_root, max_mb=max_mb, vocabulary_size=2000, log=lambda *_: None)
    on_disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != "pack.json")
    assert on_disk == info["bytes"] <= max_mb * 1e6
    assert 0.2 < info["unipen_train_share"] < 0.8
    assert json.loads((out / "pack.json").read_text())["subsampled"] == info["subsampled"]
    for name in COPIED:
        assert (out / name).read_bytes() == (data_root / name).read_bytes()
    for name in SUBSAMPLED:
        before, after = load_corpus(data_root / name), load_corpus(out / name)
        split = before.field("split")
        if name == "unipen/text.npz":  # every validation row of the set the GPU call validates on
            assert set(before.ids[split == "val"]) <= set(after.ids)
        else:
            assert not np.any(after.field("split") == "val")
        kept_train = after.ids[after.field("split") == "train"]
        assert 0 < len(kept_train) < (split == "train").sum()
        where = {str(i): k for k, i in enumerate(before.ids)}
        for k, sample_id in enumerate(after.ids):  # each kept row whole and unchanged, in order
            np.testing.assert_array_equal(after.points(k), before.points(where[str(sample_id)]))
            assert after.texts[k] == before.texts[where[str(sample_id)]]
        assert [where[str(i)] for i in after.ids] == sorted(where[str(i)] for i in after.ids)
    # training reads the pack like ../shared/data
    val = list(_source_samples("unipen-text:val", str(out), for_training=False))
    assert len(val) == 12


def test_pack_refuses_a_used_folder_and_a_budget_it_cannot_meet(data_root, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(FileExistsError):
        pack(used, data_root, vocabulary_size=2000, log=lambda *_: None)
    with pytest.raises(ValueError, match="validation rows alone"):
        fixed = sum((data_root / p).stat().st_size for p in COPIED)
        pack(tmp_path / "small", data_root, max_mb=(fixed + 70_000) / 1e6, vocabulary_size=2000, log=lambda *_: None)
    assert not (tmp_path / "small").exists()  # a failed pack is not left half-written

    class Args:
        out, data_root, max_mb, seed = str(tmp_path / "none"), str(tmp_path / "nowhere"), 42.0, 0
    with pytest.raises(SystemExit, match="inkstream pack: .*missing"):
        run(Args)


def test_synthetic_text_from_the_word_list_is_wordfreqs(tmp_path):
    path = tmp_path / "vocabulary_en.tsv"
    write_vocabulary(path, 3000)
    for size in (1000, 3000):  # the list holds ranks: a smaller vocabulary takes the same top words
        a = TextSampler(SynthConfig(vocabulary_size=size))
        b = TextSampler(SynthConfig(vocabulary_size=size, vocabulary_file=str(path)))
        assert a.words == b.words and np.array_equal(a._cdf, b._cdf)
        rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
        assert [a.line(rng_a, 6) for _ in range(20)] == [b.line(rng_b, 6) for _ in range(20)]
    with pytest.raises(ValueError, match="holds 3000 words"):
        TextSampler(SynthConfig(vocabulary_size=4000, vocabulary_file=str(path)))


def test_a_packed_data_root_gives_synthetic_ink_its_word_list(data_root, tmp_path):
    assert _synth_config("synthetic", str(data_root)).vocabulary_file == ""
    (data_root / VOCABULARY_FILE).write_text("0\tthe\t0.05\n")
    for kind in ("synthetic", "synthetic-text", "synthetic-short"):
        assert _synth_config(kind, str(data_root)).vocabulary_file == str(data_root / VOCABULARY_FILE)
