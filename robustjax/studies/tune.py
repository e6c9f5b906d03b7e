"""Hyper-parameter tuning: a grid over named config keys, selected on validation only.

Every point of the cartesian product of ``TuneConfig.grid`` is the base experiment with
the study's ``overrides`` and then the point's own ``key=value`` overrides applied, trained
by ``run_experiment`` into ``<out>/points/<i>_<slug>/``. The selected point is the one
with the highest validation metric ``TuneConfig.select`` (``valid/...``); the test value
of the same metric is reported for it, and for every point in the table, but never read
by the selection. Ties (equal validation value) go to the first point in grid order; a
NaN validation value ranks below every number.

Outputs in ``<out>``: ``results.json`` (every point's overrides, run folder, validation
and test metrics; the selected point; the base experiment and the select metric),
``results.md`` (all points sorted by the validation metric, test alongside, the selected
one marked), ``best.json`` (the selected point's grid overrides, ``["key=value", ...]``)
and ``metrics.json`` (the selected point's ``valid/*`` and ``test/*`` metrics).
``results.json`` and ``results.md`` are rewritten after each point (``complete`` says
whether every point has finished); ``best.json`` and ``metrics.json`` only at the end.

Reruns: ``--resume`` loads each point whose folder holds ``metrics.json`` of the same
config, continues a point that has a checkpoint but no ``metrics.json``, and trains the
rest; a point folder holding a different config (the grid or the overrides changed) is an
error. Without ``--resume``, an ``<out>`` that already holds trained points is refused
(retraining a grid is slow and would overwrite it): pass ``--resume`` or another ``--out``.
"""

import dataclasses
import itertools
import json
import math
import os
import re

from tqdm.auto import tqdm

from robustjax._config_checks import field_error
from robustjax.config import ExperimentConfig, apply_overrides
from robustjax.experiments import get_config
from robustjax.run import run_experiment
from robustjax.studies._common import StudyConfig, start, write_json, write_text


def _regroup(items: tuple[str, ...]) -> tuple[str, ...]:
    """Joins comma-split pieces back onto their ``key=...`` entry.

    ``--set grid=train.l2=0,1e-3,train.learning_rate=1e-3`` arrives split at every comma;
    a piece without ``=`` continues the previous entry's value list."""
    out: list[str] = []
    for item in items:
        item = str(item).strip()
        if "=" not in item and out:
            out[-1] = f"{out[-1]},{item}"
        else:
            out.append(item)
    return tuple(out)


def _parse_grid(grid: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``("a.b=1,2", ...)`` -> ``[("a.b", ["1", "2"]), ...]`` (no checks)."""
    out = []
    for entry in grid:
        key, _, values = entry.partition("=")
        out.append((key.strip(), [v.strip() for v in values.split(",")]))
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class TuneConfig(StudyConfig):
    """A grid search over ``base``'s config keys. ``--set key=value`` sets any field.

    Attributes:
        base: the named experiment tuned (one training run, e.g. ``bpr-mf``).
        grid: ``"dotted.key=v1,v2,..."`` entries; the points are their cartesian product
            in order (the last entry varies fastest). Values are parsed as ``--set`` does.
        select: the validation metric maximised, ``valid/<metric>``; never a test metric.
        data_path: the data set of every run; None keeps the base experiment's own
            (the embedded synthetic set for ``bpr-mf``).
        overrides: ``key=value`` overrides applied to the base before the grid's.
        tiny: use the base's ``tiny=True`` config (tests).
    """

    name: str = "tune"
    base: str = "bpr-mf"
    grid: tuple[str, ...] = ("train.l2=0,1e-4,1e-3,1e-2",)
    select: str = "valid/ndcg@20"
    data_path: str | None = None
    overrides: tuple[str, ...] = ()
    tiny: bool = False

    def __post_init__(self):
        for f in ("grid", "overrides"):
            value = getattr(self, f)
            if isinstance(value, str) or not isinstance(value, tuple):
                raise field_error(self, f, "a tuple of 'key=value' strings")
            object.__setattr__(self, f, _regroup(value))
        if not self.grid:
            raise field_error(self, "grid", "a non-empty tuple of 'dotted.key=v1,v2,...'")
        for entry in self.grid + self.overrides:
            key, eq, values = entry.partition("=")
            if not eq or not key.strip() or not values.strip():
                raise ValueError(
                    f"TuneConfig: {entry!r} is not 'dotted.key=value' (grid entries: "
                    f"'dotted.key=v1,v2,...', e.g. 'train.l2=0,1e-3'); got grid={self.grid!r}, "
                    f"overrides={self.overrides!r}."
                )
        keys = [k for k, _ in _parse_grid(self.grid)]
        for key, values in _parse_grid(self.grid):
            if keys.count(key) > 1:
                raise field_error(self, "grid", f"free of repeated keys ({key!r} repeats)")
            if "" in values or len(set(values)) != len(values):
                raise field_error(
                    self, "grid", f"free of empty and repeated values ({key!r}: {values})"
                )
        if not self.select.startswith("valid/") or self.select == "valid/":
            raise ValueError(
                f"TuneConfig.select must be a validation metric 'valid/<metric>' (selection "
                f"never looks at test), got select={self.select!r}; use e.g. "
                f"select='valid/ndcg@20'."
            )
        if not self.base:
            raise field_error(self, "base", "a named training experiment, e.g. 'bpr-mf'")

    @property
    def test_metric(self) -> str:
        """The test metric reported beside ``select`` (same metric, on test)."""
        return "test/" + self.select.removeprefix("valid/")

    def headline(self, metrics: dict) -> dict:
        return {k: metrics[k] for k in (self.select, self.test_metric) if k in metrics}

    def validate(self):
        points(self)  # every grid point's overrides parse and pass the base's checks
        return self


@dataclasses.dataclass(frozen=True)
class Point:
    """One grid point: its index, grid overrides, run folder name and full config."""

    index: int
    overrides: tuple[str, ...]
    folder: str
    config: ExperimentConfig


def base_config(cfg: TuneConfig) -> ExperimentConfig:
    """The base experiment with ``data_path`` and the study's ``overrides`` applied."""
    base = get_config(cfg.base, tiny=cfg.tiny)
    if not isinstance(base, ExperimentConfig):
        raise TypeError(
            f"TuneConfig.base={cfg.base!r} is a study ({type(base).__name__}), not one training "
            "run; tune a training experiment such as 'bpr-mf' or 'apr-mf'."
        )
    if cfg.data_path is not None:
        base = base.with_data(cfg.data_path, None)
    try:
        return apply_overrides(base, list(cfg.overrides))
    except ValueError as e:
        raise ValueError(f"TuneConfig.overrides={cfg.overrides!r} on {cfg.base!r}: {e}") from None


def _slug(overrides: tuple[str, ...]) -> str:
    """``("train.l2=1e-3", "adv.eps=0.5")`` -> ``"l2=1e-3_eps=0.5"`` (file-name safe)."""
    short = "_".join(
        o.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + o.split("=", 1)[1] for o in overrides
    )
    return re.sub(r"[^A-Za-z0-9.=+_-]", "-", short)[:60]


def points(cfg: TuneConfig) -> list[Point]:
    """Every grid point in order, each config built and validated (errors name the point)."""
    base = base_config(cfg)
    grid = _parse_grid(cfg.grid)
    out = []
    for i, values in enumerate(itertools.product(*(v for _, v in grid))):
        overrides = tuple(f"{k}={v}" for (k, _), v in zip(grid, values))
        try:
            point_cfg = apply_overrides(base, list(overrides))
        except ValueError as e:
            raise ValueError(f"TuneConfig.grid point {i} {list(overrides)}: {e}") from None
        _check_select(cfg, point_cfg, overrides)
        out.append(Point(i, overrides, f"{i}_{_slug(overrides)}", point_cfg))
    return out


def _check_select(cfg: TuneConfig, point_cfg: ExperimentConfig, overrides) -> None:
    _, at, k = cfg.select.partition("@")
    if at and k.isdigit() and int(k) not in point_cfg.eval.ks:
        raise ValueError(
            f"TuneConfig.select={cfg.select!r} is not computed at grid point {list(overrides)}: "
            f"its eval.ks={point_cfg.eval.ks}; select one of those cutoffs or add {k} to "
            "eval.ks in TuneConfig.overrides."
        )


def _train(point: Point, run_dir: str, *, resume: bool) -> dict:
    """The point's metrics: loaded when finished (``resume``), else trained or continued."""
    metrics_path = os.path.join(run_dir, "metrics.json")
    config_path = os.path.join(run_dir, "config.json")
    state = os.path.join(run_dir, "checkpoint", "state.npz")
    if resume and os.path.exists(config_path):
        with open(config_path) as f:
            if f.read() != point.config.to_json():
                raise ValueError(
                    f"run_tune: resume: {run_dir} holds a run of a different config than grid "
                    f"point {list(point.overrides)} (the base, overrides or data changed since); "
                    "use another --out, or delete that folder to retrain it."
                )
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                return json.load(f)
    return run_experiment(
        point.config, run_dir, resume=resume and os.path.exists(state), progress=False
    )


def _score(value) -> float:
    """Validation value as a sort key: NaN (or missing) ranks below every number."""
    return -math.inf if value is None or math.isnan(value) else float(value)


def select_best(rows: list[dict], select: str) -> int:
    """Index into ``rows`` of the highest ``row["valid"][select]``; the first on ties."""
    best = 0
    for i, row in enumerate(rows):
        if _score(row["valid"].get(select)) > _score(rows[best]["valid"].get(select)):
            best = i
    return best


def _check_out(out_dir: str, resume: bool) -> None:
    folder = os.path.join(out_dir, "points")
    if not resume and os.path.isdir(folder) and os.listdir(folder):
        raise ValueError(
            f"run_tune: {out_dir!r} already holds trained grid points; pass --resume "
            "to reuse finished points and continue interrupted ones, or choose another --out "
            "(or delete the folder) to retrain them all."
        )


def run_tune(cfg: TuneConfig, out_dir: str, *, resume: bool = False, progress: bool = True) -> dict:
    """Trains every grid point, selects on ``cfg.select``; returns the selected point's
    ``valid/*`` and ``test/*`` metrics (also written to ``metrics.json``)."""
    grid_points = points(cfg)  # every point checked before anything trains
    _check_out(out_dir, resume)
    start(cfg, out_dir)
    rows: list[dict] = []
    bar = tqdm(grid_points, desc=cfg.name, unit="run", disable=not progress, dynamic_ncols=True)
    for point in bar:
        bar.set_postfix_str(" ".join(point.overrides))
        run_dir = os.path.join(out_dir, "points", point.folder)
        metrics = _train(point, run_dir, resume=resume)
        if cfg.select not in metrics:
            raise ValueError(
                f"TuneConfig.select={cfg.select!r} is not among the metrics of {cfg.base!r}: "
                f"{sorted(k for k in metrics if k.startswith('valid/'))}."
            )
        rows.append(
            {
                "index": point.index,
                "dir": os.path.join("points", point.folder),
                "overrides": list(point.overrides),
                "score": metrics[cfg.select],
                "valid": {k: v for k, v in metrics.items() if k.startswith("valid/")},
                "test": {k: v for k, v in metrics.items() if k.startswith("test/")},
            }
        )
        write_results(cfg, out_dir, rows, complete=len(rows) == len(grid_points))
    best = rows[select_best(rows, cfg.select)]
    write_json(os.path.join(out_dir, "best.json"), best["overrides"])
    flat = {**best["valid"], **best["test"]}
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def _test(row: dict, test: str) -> float:
    return row["test"].get(test, math.nan)


def write_results(cfg: TuneConfig, out_dir: str, rows: list[dict], *, complete: bool) -> None:
    """``results.json`` and ``results.md`` of the points finished so far."""
    best = select_best(rows, cfg.select)
    write_json(
        os.path.join(out_dir, "results.json"),
        {
            "base": cfg.base,
            "overrides": list(cfg.overrides),
            "grid": list(cfg.grid),
            "data_path": cfg.data_path,
            "select": cfg.select,
            "test_metric": cfg.test_metric,
            "selection": "validation only; ties go to the first point in grid order",
            "complete": complete,
            "selected": rows[best],
            "points": rows,
        },
    )
    test = cfg.test_metric
    data = cfg.data_path or "the base experiment's own"
    order = sorted(range(len(rows)), key=lambda i: (-_score(rows[i]["score"]), i))
    lines = [
        f"# Tuning {cfg.base}: selected on {cfg.select}",
        "",
        (
            f"Selection used the validation metric only ({cfg.select}); {test} is reported "
            "beside it and was not used to choose. Ties go to the first point in grid order."
        ),
        f"Base: {cfg.base}, overrides {list(cfg.overrides)}, data: {data}.",
        "",
    ]
    if not complete:
        lines += [f"**Partial: {len(rows)} points finished so far.**", ""]
    lines += [
        f"| rank | point | overrides | {cfg.select} | {test} | selected |",
        "|---|---|---|---|---|---|",
    ]
    for rank, i in enumerate(order, 1):
        row = rows[i]
        mark = "**selected**" if i == best else ""
        lines.append(
            f"| {rank} | {row['index']} | {' '.join(row['overrides'])} | {row['score']:.4f} "
            f"| {_test(row, test):.4f} | {mark} |"
        )
    chosen = rows[best]
    lines += [
        "",
        (
            f"Selected: point {chosen['index']} ({' '.join(chosen['overrides'])}): "
            f"{cfg.select} {chosen['score']:.4f}, {test} {_test(chosen, test):.4f}."
        ),
        "",
    ]
    write_text(os.path.join(out_dir, "results.md"), "\n".join(lines))
