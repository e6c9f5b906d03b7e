"""Natural-noise robustness: train on noised interactions, evaluate on clean held-out data.

The grid and its outputs are described in ``experiments/natural_noise/config.py``.
Every model x noise kind x level is trained on ``seeds`` training seeds (``first_seed``,
``first_seed + 1``, ...; each sets the model seed and the noise seed), and every figure
in ``results.json`` is a ``robustjax.report.intervals.mean_ci`` entry (``{"mean", "ci95",
"values", "n"}``, Student-t 95% over the seeds); the layout is in
``robustjax.studies._noise_report``.
"""

import dataclasses
import json
import os
import time

from robustjax._config_checks import check_int_at_least, field_error
from robustjax.data import SplitData, apply_noise, prepare
from robustjax.data.noise import KINDS, check_level
from robustjax.experiments import get_config as experiment_config
from robustjax.studies._common import StudyConfig, start
from robustjax.studies._noise_report import is_metric, summarise_section, write_outputs


@dataclasses.dataclass(frozen=True, kw_only=True)
class NaturalNoiseConfig(StudyConfig):
    """The noise grid; every model is a named experiment trained with its own protocol.

    ``seeds`` is the number of training seeds (``--seeds N`` sets it): ``first_seed``,
    ``first_seed + 1``, ... The first model is the baseline of the paired differences.
    """

    name: str = "natural-noise"
    data_path: str | None = None
    models: tuple[str, ...] = ("bpr-mf", "apr-mf")
    kinds: tuple[str, ...] = KINDS
    levels: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
    seeds: int = 5  # training seeds per model x kind x level
    first_seed: int = 2024
    epochs: int | None = None  # None: each model's own; else clean epochs (see doc)
    metrics: tuple[str, ...] = ("ndcg@20", "recall@20")  # tabulated and plotted
    test_time: bool = True  # graph models: also noise the evaluation graph
    tiny: bool = False

    def __post_init__(self):
        for f in ("models", "kinds", "levels", "metrics"):
            value = getattr(self, f)
            if not isinstance(value, tuple) or not value:
                raise field_error(self, f, "a non-empty tuple")
            if len(set(value)) != len(value):
                raise field_error(self, f, "free of repeats")
        for kind in self.kinds:
            if kind not in KINDS:
                raise field_error(self, "kinds", f"a tuple of {list(KINDS)}")
        if self.levels[0] != 0 or any(b <= a for a, b in zip(self.levels, self.levels[1:])):
            raise field_error(self, "levels", "strictly ascending and start at 0 (the clean level)")
        for kind in self.kinds:
            for level in self.levels:
                try:
                    check_level(kind, level)
                except (ValueError, TypeError):
                    raise field_error(
                        self,
                        "levels",
                        f"valid for kind {kind!r} (fractions in [0, 1], "
                        "'add': any finite value >= 0)",
                    ) from None
        check_int_at_least(self, "seeds", 1, "an int >= 1 (the number of training seeds)")
        check_int_at_least(self, "first_seed", 0)
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise field_error(self, "epochs", "None or an int >= 1")
        for m in self.metrics:
            name, _, k = m.partition("@")
            if not name or not k.isdigit():
                raise field_error(self, "metrics", "a tuple of names like 'ndcg@20'")

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The training seeds: ``first_seed + i`` for ``i < seeds``."""
        return tuple(self.first_seed + i for i in range(self.seeds))

    def validate(self) -> "NaturalNoiseConfig":
        """Checks the models against the named experiments (after all overrides)."""
        for model in self.models:
            base = model_config(self, model, seed=self.first_seed)
            missing = [m for m in self.metrics if int(m.partition("@")[2]) not in base.eval.ks]
            if missing:
                raise ValueError(
                    f"NaturalNoiseConfig.metrics={self.metrics!r}: {missing} are "
                    f"not computed by {model!r} (eval.ks={base.eval.ks}); use "
                    "cutoffs from eval.ks."
                )
        return self


def model_config(
    cfg: NaturalNoiseConfig, model: str, *, kind: str | None = None, level: float = 0.0, seed: int
):
    """The ExperimentConfig of one training run: ``model`` with ``kind`` noise at ``level``."""
    if model == cfg.name:
        raise ValueError(f"NaturalNoiseConfig.models may not contain {cfg.name!r} itself.")
    base = experiment_config(model, tiny=cfg.tiny)
    if not all(hasattr(base, a) for a in ("data", "train", "adv", "eval")):
        raise ValueError(
            f"NaturalNoiseConfig.models: {model!r} is not a train/evaluate "
            "experiment (it has no data/train/eval sections); use e.g. bpr-mf, "
            "apr-mf, lightgcn or neumf."
        )
    data = (
        base.data if cfg.data_path is None else dataclasses.replace(base.data, path=cfg.data_path)
    )
    noisy = level != 0
    data = dataclasses.replace(
        data,
        train_noise=kind if noisy else None,
        train_noise_level=float(level) if noisy else 0.0,
        train_noise_seed=seed,
    )
    train, adv = dataclasses.replace(base.train, seed=seed), base.adv
    if cfg.epochs is not None:
        if adv.method != "none":
            train = dataclasses.replace(train, epochs=2 * cfg.epochs)
            adv = dataclasses.replace(adv, warm_epochs=cfg.epochs)
        else:
            train = dataclasses.replace(train, epochs=cfg.epochs)
    return dataclasses.replace(base, data=data, train=train, adv=adv).validate()


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def _evaluate(fns, split: SplitData, params, ecfg, prefix: str) -> dict:
    """Full-ranking valid and test metrics of ``params``; the mask is ``split.train``."""
    from robustjax.run import Evaluator

    ev = Evaluator(fns, split, ecfg.eval.ks, ecfg.eval.batch_size)
    return {
        **_prefixed(prefix + "valid/", ev(params, "valid")),
        **_prefixed(prefix + "test/", ev(params, "test")),
    }


def _train(ecfg, run_dir: str, *, resume: bool) -> dict:
    """``run_experiment`` in ``run_dir``; with ``resume``, a finished run of the same config
    is reused and an interrupted one continues from its checkpoint."""
    from robustjax.run import run_experiment

    metrics_path = os.path.join(run_dir, "metrics.json")
    config_path = os.path.join(run_dir, "config.json")
    if resume and os.path.exists(metrics_path) and os.path.exists(config_path):
        with open(config_path) as f:
            same = f.read() == ecfg.to_json()
        if same:
            with open(metrics_path) as f:
                return json.load(f)
    state = os.path.join(run_dir, "checkpoint", "state.npz")
    return run_experiment(ecfg, run_dir, resume=resume and os.path.exists(state), progress=False)


def _test_time(cfg, ecfg, clean: SplitData, params, seed: int) -> dict:
    """A clean-trained graph model evaluated with its graph built from noised training
    pairs: ``kind@level -> metrics``."""
    from robustjax.models import build_model

    out = {}
    for k in cfg.kinds:
        for lv in cfg.levels[1:]:
            noised = apply_noise(clean, k, lv, seed=seed)
            fns, _ = build_model(
                ecfg.model,
                clean.num_users,
                clean.num_items,
                seed=0,
                train_pairs=(noised.train.user, noised.train.item),
            )
            out[f"{k}@{lv:g}"] = {
                **_evaluate(fns, noised, params, ecfg, ""),
                **_evaluate(fns, clean, params, ecfg, "clean_mask/"),
            }
    return out


def run_grid(
    cfg: NaturalNoiseConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs the grid of ``cfg`` and writes results.json, results.md, metrics.json, PNGs."""
    from tqdm.auto import tqdm

    from robustjax.run import load_run

    cfg.validate()
    t0 = time.perf_counter()
    start(cfg, out_dir)
    jobs = [
        (model, seed, kind, level)
        for model in cfg.models
        for seed in cfg.seed_list
        for kind, level in [(None, 0.0)] + [(k, lv) for k in cfg.kinds for lv in cfg.levels[1:]]
    ]
    clean_splits: dict[str, SplitData] = {}
    runs: dict = {}  # model -> "clean" | "kind@level" -> "seed<s>" -> metrics
    test_time: dict = {}  # model -> kind@level -> seed<s> -> metrics (graph models)
    bar = tqdm(jobs, desc="natural-noise", unit="run", disable=not progress, dynamic_ncols=True)
    for model, seed, kind, level in bar:
        tag = "clean" if kind is None else f"{kind}@{level:g}"
        bar.set_postfix_str(f"{model} {tag} seed {seed}")
        ecfg = model_config(cfg, model, kind=kind, level=level, seed=seed)
        clean_cfg = dataclasses.replace(ecfg.data, train_noise=None, train_noise_level=0.0)
        if repr(clean_cfg) not in clean_splits:
            clean_splits[repr(clean_cfg)] = prepare(clean_cfg)
        clean = clean_splits[repr(clean_cfg)]
        run_dir = os.path.join(out_dir, "runs", model, tag, f"seed{seed}")
        metrics = dict(_train(ecfg, run_dir, resume=resume))
        noisy = clean if kind is None else apply_noise(clean, kind, level, seed=seed)
        loaded = load_run(run_dir, split=noisy)
        if kind is not None:  # the same parameters, hiding the clean training items
            metrics.update(_evaluate(loaded.fns, clean, loaded.params, ecfg, "clean_mask/"))
        else:
            metrics.update({f"clean_mask/{k}": v for k, v in metrics.items() if is_metric(k)})
        runs.setdefault(model, {}).setdefault(tag, {})[f"seed{seed}"] = metrics
        if kind is None and cfg.test_time and ecfg.model.name == "lightgcn":
            for tt_tag, m in _test_time(cfg, ecfg, clean, loaded.params, seed).items():
                test_time.setdefault(model, {}).setdefault(tt_tag, {})[f"seed{seed}"] = m
    results = assemble(
        cfg,
        runs,
        test_time,
        data=next(iter(clean_splits.values())).name,
        seconds=time.perf_counter() - t0,
    )
    return write_outputs(cfg, results, out_dir)


def assemble(
    cfg: NaturalNoiseConfig, runs: dict, test_time: dict, *, data: str, seconds: float
) -> dict:
    """The results.json dict: ``runs[model][tag]["seed<s>"] -> metrics`` (tag ``clean``
    or ``kind@level``) summarised over the seeds (``_noise_report.summarise_section``)."""
    seeds = list(cfg.seed_list)
    out = {
        "experiment": cfg.name,
        "config": dataclasses.asdict(cfg),
        "data": data,
        "levels": list(cfg.levels),
        "kinds": list(cfg.kinds),
        "models": list(cfg.models),
        "baseline": cfg.models[0],
        "seeds": seeds,
        "n": len(seeds),
        "seconds": seconds,
        "training_time": summarise_section(cfg, runs, seeds),
        "runs": runs,
    }
    if test_time:
        per_model = {m: {**tags, "clean": runs[m]["clean"]} for m, tags in test_time.items()}
        out["test_time"] = summarise_section(cfg, per_model, seeds)
    return out
