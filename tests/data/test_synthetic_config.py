import hashlib
import os
import zipfile

import numpy as np
import pytest

import robustjax.data as rd


def test_synthetic_shapes_determinism():
    t = rd.synthetic()
    assert (t.num_users, t.num_items, len(t)) == (500, 800, 15000)
    assert t.user.dtype == np.int32 and t.rating.dtype == np.float32
    assert t.rating.min() >= 1 and t.rating.max() <= 5
    assert np.array_equal(t.item, rd.synthetic().item)
    assert not np.array_equal(t.item, rd.synthetic(seed=1).item)
    assert np.all(np.diff(t.timestamp.reshape(500, 30), axis=1) > 0)
    assert len(rd.deduplicate(t)) == len(t)  # without replacement


def test_synthetic_popularity_skew():
    def top_share(skew):
        c = np.sort(np.bincount(rd.synthetic(popularity_skew=skew).item, minlength=800))[::-1]
        return c[:80].sum() / c.sum()

    assert top_share(2.0) > top_share(1.0) > top_share(0.0) + 0.05


@pytest.mark.slow
def test_synthetic_learnable():
    """A rank-8 SVD of the train matrix beats popularity on held-out items."""
    s = rd.split_random(rd.synthetic(), seed=0)
    m = np.zeros((s.num_users, s.num_items))
    m[s.train.user, s.train.item] = 1
    u, d, vt = np.linalg.svd(m, full_matrices=False)
    scores = {"svd": (u[:, :8] * d[:8]) @ vt[:8], "pop": np.tile(m.sum(0), (s.num_users, 1))}
    hits = {}
    for k, sc in scores.items():
        sc = np.where(m > 0, -np.inf, sc)
        top = np.argpartition(-sc, 20, axis=1)[:, :20]
        test = np.zeros_like(m, dtype=bool)
        test[s.test.user, s.test.item] = True
        hits[k] = np.take_along_axis(test, top, axis=1).sum()
    assert hits["svd"] > 1.5 * hits["pop"]


def test_prepare_synthetic_and_config_errors():
    s = rd.prepare(rd.DataConfig(synthetic_users=50, synthetic_items=60, synthetic_per_user=10))
    assert s.name == "synthetic" and len(s.train) + len(s.valid) + len(s.test) == 500
    with pytest.raises(ValueError, match="DataConfig.split.*split='bogus'"):
        rd.DataConfig(split="bogus")
    with pytest.raises(ValueError, match="DataConfig.kcore.*kcore=-1"):
        rd.DataConfig(kcore=-1)
    with pytest.raises(ValueError, match="ratios"):
        rd.DataConfig(ratios=(0.9, 0.2, 0.1))


def test_prepare_real(shared_data):
    s = rd.prepare(
        rd.DataConfig(
            path=os.path.join(shared_data, "ml-100k", "ml-100k.inter"),
            rating_threshold=4,
            kcore=5,
            split="loo",
        )
    )
    assert len(s.test) == s.num_users
    assert s.train.rating.min() >= 4
    with pytest.warns(rd.DataWarning, match="11 test item"):
        g = rd.prepare(rd.DataConfig(path=os.path.join(shared_data, "ml-100k-split")))
    assert (len(g.train), len(g.valid), len(g.test)) == (80024, 9988, 9988)
    with pytest.warns(rd.DataWarning, match="27 test item"):
        lf = rd.prepare(
            rd.DataConfig(path=os.path.join(shared_data, "lastfm-lightgcn"), drop_cold=True)
        )
    assert len(lf.test) < 10533
    seq = rd.prepare(
        rd.DataConfig(
            path=os.path.join(shared_data, "toys-s3rec", "Toys_and_Games.txt"), split="loo"
        )
    )
    assert len(seq.test) == 19412
    with pytest.raises(ValueError, match="split folder"):
        rd.prepare(rd.DataConfig(path=os.path.join(shared_data, "ml-100k-split"), split="loo"))


def _make_zip(tmp_path, name, member):
    src = tmp_path / "srv"
    src.mkdir(exist_ok=True)
    zp = src / f"{name}.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr(f"{name}/{member}", "1\t2\t5\t100\n2\t3\t4\t200\n")
    return src, hashlib.sha256(zp.read_bytes()).hexdigest()


def test_download_file_url(tmp_path):
    src, digest = _make_zip(tmp_path, "ml-100k", "u.data")
    cache = tmp_path / "cache"
    p = rd.download_movielens(
        "ml-100k", cache_dir=str(cache), base_url=src.as_uri() + "/", sha256=digest
    )
    assert p.endswith(os.path.join("ml-100k", "u.data"))
    assert len(rd.load(p)) == 2
    (src / "ml-100k.zip").unlink()  # second call must use the cache
    assert (
        rd.download_movielens(
            "ml-100k", cache_dir=str(cache), base_url=src.as_uri() + "/", sha256=digest
        )
        == p
    )


def test_download_checksum_mismatch(tmp_path):
    src, _ = _make_zip(tmp_path, "ml-1m", "ratings.dat")
    with pytest.raises(ValueError, match="checksum mismatch.*expected a6898adb"):
        rd.download_movielens("ml-1m", cache_dir=str(tmp_path / "c"), base_url=src.as_uri() + "/")
    assert not (tmp_path / "c" / "ml-1m.zip").exists()


def test_download_unknown_checksum_recorded(tmp_path, monkeypatch):
    src, digest = _make_zip(tmp_path, "ml-1m", "ratings.dat")
    monkeypatch.setitem(rd.KNOWN_SHA256, "ml-1m", None)
    cache = tmp_path / "c"
    rd.download_movielens("ml-1m", cache_dir=str(cache), base_url=src.as_uri() + "/")
    assert (cache / "ml-1m.zip.sha256").read_text().strip() == digest
