"""Natural-noise robustness: train on noised interactions, evaluate on clean held-out data.

Command::

    robustjax train --experiment natural-noise --data ../shared/data/ml-100k-split \\
        --out runs/noise

For every model (a named experiment: ``bpr-mf``, ``apr-mf``, also ``lightgcn``,
``neumf``) x noise kind (``drop``, ``add``, ``swap``, ``sparsity``; see
``robustjax.data.noise``) x level x seed, the model's own protocol is trained on the
noised training split (``DataConfig.train_noise``) with ``run_experiment`` and evaluated
by full ranking on the clean validation and test sets. Level 0 (clean) is trained once
per model and seed and shared by all kinds. The seed sets both the model seed
(``train.seed``) and the noise seed (``data.train_noise_seed``); the clean split is fixed.

``--set kinds=drop,swap --set levels=0,0.2 --set models=bpr-mf --set seeds=1,2
--set epochs=20`` narrow the grid (levels must start at 0). ``epochs`` replaces the clean
training length; models with an adversarial phase (apr-mf) then run ``epochs`` warm-up
and ``epochs`` adversarial epochs, as in ``experiments/apr_mf``.

Outputs in ``--out``: ``results.json`` (every metric at every level and seed, relative
change from the clean level, area under the metric-vs-level curve), ``results.md``,
``<metric>.png`` (one panel per kind, one line per model; needs matplotlib),
``metrics.json`` (headline numbers) and ``runs/<model>/<clean|kind@level>/seed<s>/`` (the
full output of each training run; ``--resume`` reuses finished ones).

Two masks: the headline metrics are ``run_experiment``'s, which hides the user's
*observed* (noised) training items from the ranking, as a deployed system would;
``clean_mask/...`` re-evaluates the same parameters hiding the *clean* training items, so
that a drop is not caused by dropped training items competing with the test items.

Test-time noise: for graph models (``lightgcn``), whose user representation is computed
from the interactions, the clean-trained model is also evaluated with its graph built
from the noised training pairs (``test_time`` in results.json). MF user embeddings are
free parameters, so for MF (bpr-mf, apr-mf) interaction noise is a training-time threat.

Runtime: 34 training runs for the default grid (bpr-mf + apr-mf, 4 kinds x 5 levels, one
seed); about 11 minutes for ``--set levels=0,0.3`` (10 runs) on a heavily loaded 2-core
CPU. Measured ml-100k-split numbers (test NDCG@20 clean 0.320 / 0.338; at 30% noise
-7% (add) to -39% (swap)): see README.md.
"""

import dataclasses

from experiments._base import ConfigBase
from robustjax.data.noise import KINDS, check_level


@dataclasses.dataclass(frozen=True, kw_only=True)
class NaturalNoiseConfig(ConfigBase):
    """The noise grid; every model is a named experiment trained with its own protocol."""

    name: str = "natural-noise"
    data_path: str | None = None
    models: tuple[str, ...] = ("bpr-mf", "apr-mf")
    kinds: tuple[str, ...] = KINDS
    levels: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
    seeds: tuple[int, ...] = (2024,)
    epochs: int | None = None  # None: each model's own; else clean epochs (see doc)
    metrics: tuple[str, ...] = ("ndcg@20", "recall@20")  # tabulated and plotted
    test_time: bool = True  # graph models: also noise the evaluation graph
    tiny: bool = False

    def __post_init__(self):
        def bad(field, expected):
            return ValueError(
                f"NaturalNoiseConfig.{field} must be {expected}, got "
                f"{field}={getattr(self, field)!r}."
            )

        for f in ("models", "kinds", "levels", "seeds", "metrics"):
            value = getattr(self, f)
            if not isinstance(value, tuple) or not value:
                raise bad(f, "a non-empty tuple")
            if len(set(value)) != len(value):
                raise bad(f, "free of repeats")
        for kind in self.kinds:
            if kind not in KINDS:
                raise bad("kinds", f"a tuple of {list(KINDS)}")
        if self.levels[0] != 0 or any(b <= a for a, b in zip(self.levels, self.levels[1:])):
            raise bad("levels", "strictly ascending and start at 0 (the clean level)")
        for kind in self.kinds:
            for level in self.levels:
                try:
                    check_level(kind, level)
                except (ValueError, TypeError):
                    raise bad(
                        "levels",
                        f"valid for kind {kind!r} (fractions in [0, 1], "
                        "'add': any finite value >= 0)",
                    ) from None
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise bad("seeds", "a tuple of ints >= 0")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise bad("epochs", "None or an int >= 1")
        for m in self.metrics:
            name, _, k = m.partition("@")
            if not name or not k.isdigit():
                raise bad("metrics", "a tuple of names like 'ndcg@20'")

    def validate(self) -> "NaturalNoiseConfig":
        """Checks the models against the named experiments (after all overrides)."""
        for model in self.models:
            base = model_config(self, model, seed=self.seeds[0])
            missing = [m for m in self.metrics if int(m.partition("@")[2]) not in base.eval.ks]
            if missing:
                raise ValueError(
                    f"NaturalNoiseConfig.metrics={self.metrics!r}: {missing} are "
                    f"not computed by {model!r} (eval.ks={base.eval.ks}); use "
                    "cutoffs from eval.ks."
                )
        return self


def get_config(*, tiny: bool = False, **overrides) -> NaturalNoiseConfig:
    cfg = NaturalNoiseConfig()
    if tiny:  # bpr-mf's tiny config (synthetic data, 2 epochs), 2 runs: a smoke test
        cfg = dataclasses.replace(
            cfg,
            models=("bpr-mf",),
            kinds=("swap",),
            levels=(0.0, 0.5),
            epochs=2,
            metrics=("ndcg@10", "recall@10"),
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def model_config(
    cfg: NaturalNoiseConfig, model: str, *, kind: str | None = None, level: float = 0.0, seed: int
):
    """The ExperimentConfig of one training run: ``model`` with ``kind`` noise at ``level``."""
    from experiments import get_config as experiment_config

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


def run(
    cfg: NaturalNoiseConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Trains every model x kind x level x seed; writes results.json/.md and plots."""
    from experiments.natural_noise.sweep import run_grid

    return run_grid(cfg, out_dir, resume=resume, progress=progress)
