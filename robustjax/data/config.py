"""DataConfig and the single entry point ``prepare``."""

import dataclasses
import os

from robustjax._config_checks import check_int_at_least, field_error
from robustjax.data import cold, folder, noise, preprocess, splits
from robustjax.data.synthetic import synthetic
from robustjax.data.table import InteractionTable, SplitData

_SPLITS = ("auto", "random", "loo", "temporal", "given", "cold_items")
_LOO_ORDERS = ("timestamp", "file", "auto")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """How to load, preprocess and split a data set (see ``prepare``).

    Attributes:
        path: file or folder; None uses the synthetic generator.
        format: one of ``folder.FORMATS``; None auto-detects.
        sep, columns, header: passed to the loader when set (delimited/pairs formats).
        rating_threshold: keep rows with rating >= this (explicit data only).
        dedup: drop repeated (user, item) pairs, keeping the first.
        kcore: k for an iterated k-core on users and items (0: off).
        split: "auto" (given for split folders, random otherwise), "random", "loo",
            "temporal", "given" or "cold_items" (``robustjax.data.cold``: a seeded share
            of items held out of training entirely; their rows go to ``cold_valid`` /
            ``cold_test`` by user, the warm items split as "random").
        ratios: (train, valid, test) fractions for random, temporal and cold_items splits.
        cold_item_ratio: share of items held out by split="cold_items", in (0, 1).
        loo_order: "timestamp", "file" or "auto" (timestamp if present, else file order).
        drop_cold: drop valid/test rows of users without training rows instead of raising.
        valid_ratio: for split folders without a valid file (LightGCN folders): the
            fraction of each user's training rows carved out (seeded by ``seed``) as the
            valid part, in (0, 0.5); ``data.json`` records what was carved.
        max_users: keep only the rows of the first ``max_users`` users by id (0: every
            user), before any other step: the subsample ``--tiny --data`` trains on.
        seed: seed of the random split, of carving valid out of given train sets and of the
            synthetic generator.
        synthetic_users, synthetic_items, synthetic_per_user: synthetic generator sizes.
        train_noise: None (off), or natural noise on the training part after splitting:
            "drop", "add", "swap" or "sparsity" (``robustjax.data.noise``); valid and test
            stay clean.
        train_noise_level: fraction of interactions affected, in [0, 1] ("add": >= 0);
            must be 0 when ``train_noise`` is None.
        train_noise_seed: seed of the noise (independent of ``seed``, so the clean split
            stays the same across noise seeds).
    """

    path: str | None = None
    format: str | None = None
    sep: str | None = None
    columns: tuple[str, ...] | None = None
    header: bool | None = None
    rating_threshold: float | None = None
    dedup: bool = True
    kcore: int = 0
    split: str = "auto"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    loo_order: str = "auto"
    cold_item_ratio: float = 0.1
    drop_cold: bool = False
    valid_ratio: float = 0.1
    max_users: int = 0
    seed: int = 2024
    synthetic_users: int = 500
    synthetic_items: int = 800
    synthetic_per_user: int = 30
    train_noise: str | None = None
    train_noise_level: float = 0.0
    train_noise_seed: int = 0

    def __post_init__(self):
        if self.format is not None and self.format not in folder.FORMATS:
            raise field_error(self, "format", f"None or one of {list(folder.FORMATS)}")
        if self.path is None and self.format not in (None, "synthetic"):
            raise field_error(self, "format", "None or 'synthetic' when path=None")
        if self.format == "synthetic" and self.path is not None:
            raise field_error(self, "path", "None for format='synthetic'")
        if self.split not in _SPLITS:
            raise field_error(self, "split", f"one of {list(_SPLITS)}")
        if self.loo_order not in _LOO_ORDERS:
            raise field_error(self, "loo_order", f"one of {list(_LOO_ORDERS)}")
        try:
            cold.check_cold_item_ratio(self.cold_item_ratio)
        except ValueError as e:
            raise field_error(self, "cold_item_ratio", "a number in (0, 1)") from e
        if not isinstance(self.kcore, int) or self.kcore < 0:
            raise field_error(self, "kcore", "an int >= 0")
        if (
            isinstance(self.valid_ratio, bool)
            or not isinstance(self.valid_ratio, (int, float))
            or not 0 < self.valid_ratio < 0.5
        ):
            raise field_error(
                self, "valid_ratio", "a number in (0, 0.5) (an empty valid part is an error)"
            )
        check_int_at_least(self, "max_users", 0, "an int >= 0 (0: every user)")
        check_int_at_least(self, "seed", 0, "an int >= 0 (numpy seeds cannot be negative)")
        splits._check_ratios(self.ratios)
        if len(tuple(self.ratios)) != 3:
            raise field_error(self, "ratios", "three numbers")
        for f in ("synthetic_users", "synthetic_items", "synthetic_per_user"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < 1:
                raise field_error(self, f, "a positive int")
        if self.synthetic_per_user > self.synthetic_items:
            raise field_error(
                self, "synthetic_per_user", f"<= synthetic_items={self.synthetic_items}"
            )
        if self.columns is not None and not isinstance(self.columns, tuple):
            raise field_error(self, "columns", "None or a tuple of column names")
        if self.train_noise is not None and self.train_noise not in noise.KINDS:
            raise field_error(self, "train_noise", f"None or one of {list(noise.KINDS)}")
        # The level is checked against the kind in ``prepare``: ``--set`` replaces one
        # field at a time, so the pair may be inconsistent in between.
        if (
            isinstance(self.train_noise_level, bool)
            or not isinstance(self.train_noise_level, (int, float))
            or not (0 <= self.train_noise_level < float("inf"))
        ):
            raise field_error(self, "train_noise_level", "a finite number >= 0")
        check_int_at_least(self, "train_noise_seed", 0)


def _loader_options(cfg: DataConfig, fmt: str) -> dict:
    opts = {}
    if fmt in ("delimited", "pairs", "user-lines") and cfg.sep is not None:
        opts["sep"] = cfg.sep
    if fmt in ("delimited", "pairs") and cfg.header is not None:
        opts["header"] = cfg.header
    if fmt == "delimited" and cfg.columns is not None:
        opts["columns"] = cfg.columns
    given = {k for k in ("sep", "header", "columns") if getattr(cfg, k) is not None}
    if given - set(opts):
        raise ValueError(
            f"DataConfig: {sorted(given - set(opts))} are not used by format {fmt!r}; "
            f"set format='delimited' to use them, or leave them None."
        )
    if fmt == "split-folder":
        opts["seed"] = cfg.seed
        opts["valid_ratio"] = cfg.valid_ratio
    return opts


def _clean(cfg: DataConfig, t: InteractionTable) -> InteractionTable:
    t = preprocess.first_users(t, cfg.max_users)
    if cfg.rating_threshold is not None:
        t = preprocess.to_implicit(t, cfg.rating_threshold)
    if cfg.dedup:
        t = preprocess.deduplicate(t)
    return t


def prepare(cfg: DataConfig) -> SplitData:
    """Loads, cleans and splits data as ``cfg`` says.

    Order: load -> rating threshold -> dedup -> k-core -> split -> training noise. For
    given splits (split folders) the threshold and dedup apply per part, k-core is not
    supported, and users without training rows are kept unless ``drop_cold`` (the
    dataset's own protocol). With ``train_noise`` set, ``noise.apply_noise`` corrupts the
    training part only (valid and test stay clean).

    An empty valid or test part is an error (its metrics would be 0.0). Given splits warn
    (``splits.DataWarning``) with counts of test items and users without training rows
    and of test rows equal to training rows; other splits exclude cold users by
    construction and warn for repeated rows only (``dedup=False``). The counts are in
    ``SplitData.summary()`` either way.

    Returns:
        SplitData whose name is the data file/folder name (or "synthetic"), with
        ``+<kind>@<level>`` appended when training noise is on.
    """
    if cfg.train_noise is None:
        if cfg.train_noise_level != 0:
            raise ValueError(
                f"DataConfig.train_noise_level={cfg.train_noise_level!r} has no effect with "
                f"train_noise=None; set train_noise to one of {list(noise.KINDS)} or the "
                "level to 0."
            )
        return _prepare_clean(cfg)
    try:
        noise.check_level(cfg.train_noise, cfg.train_noise_level)
    except ValueError:
        raise ValueError(
            f"DataConfig.train_noise_level={cfg.train_noise_level!r} is out of range for "
            f"train_noise={cfg.train_noise!r}: expected a fraction in [0, 1]"
            + (" (or any finite value >= 0 for 'add')." if cfg.train_noise != "add" else ".")
        ) from None
    return noise.apply_noise(
        _prepare_clean(cfg), cfg.train_noise, cfg.train_noise_level, seed=cfg.train_noise_seed
    )


def _prepare_clean(cfg: DataConfig) -> SplitData:
    name, fmt, loaded = _load(cfg)
    if fmt == "split-folder":
        return _prepare_given(cfg, loaded)
    if cfg.split == "given":
        raise ValueError(
            f"DataConfig.split='given' needs a split folder (train/valid/test files), got "
            f"path={cfg.path!r}; use split='random', 'loo' or 'temporal'."
        )
    table = _clean(cfg, loaded)
    if cfg.kcore:
        table = preprocess.kcore(table, cfg.kcore, cfg.kcore)
    else:
        table = preprocess.remap(table)
    if len(table) == 0:
        raise ValueError(
            f"DataConfig: no interactions left in {name!r} after preprocessing "
            f"(rating_threshold={cfg.rating_threshold}, kcore={cfg.kcore})."
        )
    return _split(cfg, table, name)


def _load(cfg: DataConfig) -> tuple[str, str, InteractionTable | SplitData]:
    """``(name, format, data)``: the synthetic table, or what ``cfg.path`` holds (a
    SplitData for split folders, else one table)."""
    if cfg.path is None or cfg.format == "synthetic":
        table = synthetic(
            num_users=cfg.synthetic_users,
            num_items=cfg.synthetic_items,
            interactions_per_user=cfg.synthetic_per_user,
            seed=cfg.seed,
        )
        return "synthetic", "synthetic", table
    fmt = cfg.format or folder.detect_format(cfg.path)
    name = os.path.basename(os.path.normpath(cfg.path))
    return name, fmt, folder.load(cfg.path, format=fmt, **_loader_options(cfg, fmt))


def _prepare_given(cfg: DataConfig, s: SplitData) -> SplitData:
    """A split folder's own train/valid/test, each part cleaned (no k-core, no re-split)."""
    if cfg.split not in ("auto", "given"):
        raise ValueError(
            f"DataConfig.split={cfg.split!r} but {cfg.path!r} is a split folder; use "
            f"split='given' (or 'auto')"
            + (
                ", or a plain interaction file for split='cold_items' (it re-splits the "
                "rows, which a given split forbids)."
                if cfg.split == "cold_items"
                else "."
            )
        )
    if cfg.kcore:
        raise ValueError(
            f"DataConfig.kcore={cfg.kcore} is not supported for given splits "
            f"({cfg.path!r}); set kcore=0."
        )
    s = dataclasses.replace(
        s, train=_clean(cfg, s.train), valid=_clean(cfg, s.valid), test=_clean(cfg, s.test)
    )
    s = splits.check_cold(s, drop_cold=True) if cfg.drop_cold else s
    splits.check_nonempty(
        s,
        f"Check the files of the split folder {cfg.path!r}"
        + (f" and rating_threshold={cfg.rating_threshold}" if cfg.rating_threshold else "")
        + (
            ", and drop_cold=True (it drops test rows of users without training rows)"
            if cfg.drop_cold
            else ""
        )
        + "; without a valid file, valid is carved from train by DataConfig.valid_ratio.",
    )
    splits.warn_evaluation(s)
    return s


def _split(cfg: DataConfig, table: InteractionTable, name: str) -> SplitData:
    """``table`` (cleaned, ids dense) split as ``cfg.split`` says."""
    kw = {"drop_cold": cfg.drop_cold, "name": name}
    if cfg.split in ("auto", "random"):
        s = splits.split_random(table, cfg.ratios, seed=cfg.seed, **kw)
        how = f"split='random' with ratios={cfg.ratios}: raise that part's ratio."
    elif cfg.split == "cold_items":
        s = cold.split_cold_items(
            table, cfg.ratios, cold_item_ratio=cfg.cold_item_ratio, seed=cfg.seed, **kw
        )
        how = f"split='cold_items' with ratios={cfg.ratios}: raise that part's ratio."
    elif cfg.split == "loo":
        s = splits.split_leave_one_out(table, order=cfg.loo_order, **kw)
        how = "split='loo' puts users with fewer than 3 rows wholly in train; use 'random'."
    else:
        s = splits.split_temporal(table, cfg.ratios, **kw)
        how = f"split='temporal' with ratios={cfg.ratios}: raise that part's ratio."
    splits.check_nonempty(s, how)
    splits.warn_evaluation(s, kinds=("test_rows_in_train",))
    return s
