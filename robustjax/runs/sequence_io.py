"""Saved sequential runs: the selected parameters with the model's constructor arguments
and the recipe of its data, so sweeps and transfer studies rebuild a trained model from its
run folder alone (``checkpoint/params.npz`` with the JSON sidecar ``params.json``)."""

import dataclasses
import os

from flax import nnx

from robustjax._json_files import read_json
from robustjax.data.fingerprint import check_fingerprint, data_fingerprint, read_fingerprint
from robustjax.data.sequences import NUM_EVAL_NEGATIVES, SequenceData, make_sequence_data
from robustjax.data.table import InteractionTable
from robustjax.models.bert4rec import BERT4Rec
from robustjax.models.sasrec import SASRec
from robustjax.models.text_sasrec import TextSASRec
from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree

SEQUENCE_MODELS = {"sasrec": SASRec, "bert4rec": BERT4Rec, "text-sasrec": TextSASRec}


def register_sequence_model(name: str, cls) -> None:
    """Makes ``load_sequence_run`` able to rebuild checkpoints of model class ``cls``."""
    SEQUENCE_MODELS[name] = cls


def _model_class(name: str):
    if name not in SEQUENCE_MODELS:
        raise ValueError(f"unknown sequence model {name!r}; known: {sorted(SEQUENCE_MODELS)}.")
    return SEQUENCE_MODELS[name]


def load_table(data_spec: dict) -> InteractionTable:
    """The interaction table of ``{"path": PATH[, "format": FMT]}`` or
    ``{"synthetic": {kwargs}}``."""
    if data_spec.get("synthetic") is not None:
        from robustjax.data import synthetic

        return synthetic(**data_spec["synthetic"])
    if "path" not in data_spec:
        raise ValueError(
            f"load_table: the run's data ({data_spec}) cannot be rebuilt from its folder."
        )
    from robustjax.data import load
    from robustjax.data.preprocess import first_users, remap

    table = load(data_spec["path"], format=data_spec.get("format"))
    if data_spec.get("max_users"):  # the --tiny subsample: the first users, renumbered
        table = remap(first_users(table, data_spec["max_users"]))
    return table


def save_sequence_run(
    out_dir: str,
    params,
    *,
    model: str,
    model_kwargs: dict,
    data_spec: dict,
    max_len: int,
    seed: int,
    extra: dict | None = None,
) -> str:
    """Writes ``out_dir/checkpoint/params.npz`` (+ ``params.json``); returns the path."""
    path = os.path.join(out_dir, "checkpoint", "params.npz")
    save_pytree(
        path,
        params,
        {
            "model": model,
            "model_kwargs": model_kwargs,
            "data": data_spec,
            "max_len": max_len,
            "seed": seed,
            **(extra or {}),
        },
    )
    return path


@dataclasses.dataclass(frozen=True)
class SequenceRun:
    """A reloaded sequential run: ``nnx.merge(graphdef, params)`` is the trained model."""

    path: str
    graphdef: nnx.GraphDef
    params: object
    data: SequenceData
    meta: dict
    fingerprint: dict | None = None  # of the data it is evaluated on (None: unknown)

    @property
    def model(self):
        return nnx.merge(self.graphdef, self.params)


def is_sequence_run(run_dir: str) -> bool:
    path = os.path.join(run_dir, "checkpoint", "params.json")
    if not os.path.exists(path):
        return False
    meta = read_json(
        path,
        lambda e: (
            f"checkpoint metadata {path!r} is not valid JSON ({e}); the file is truncated "
            "or was not written by robustjax. Restore it, or train the run again."
        ),
    )
    return isinstance(meta, dict) and "model_kwargs" in meta


def load_sequence_run(
    run_dir: str,
    *,
    data: SequenceData | None = None,
    fingerprint: dict | None = None,
    data_from: str | None = None,
) -> SequenceRun:
    """Rebuilds the model and (unless given) the leave-one-out data of a saved run.

    The data must match the fingerprint in the run's ``data.json``
    (:func:`robustjax.data.data_fingerprint` of its interaction table): rebuilt data is
    checked against it, and given ``data`` is checked when its ``fingerprint`` is given
    (``data_from``: the run it was built for, named in errors). A run without a stored
    fingerprint (older robustjax) is loaded with a ``FingerprintWarning``.
    """
    path = os.path.join(run_dir, "checkpoint", "params.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"load_sequence_run: {run_dir!r} has no checkpoint/params.npz; "
            f"is it the --out folder of a sequential training run?"
        )
    meta = load_meta(path)
    cls = _model_class(meta["model"])
    model = cls(**meta["model_kwargs"], rngs=nnx.Rngs(0))
    graphdef, template = nnx.split(model, nnx.Param)
    params = load_pytree(path, template)
    stored = read_fingerprint(run_dir)
    if data is None:
        table = load_table(meta["data"])
        fingerprint = data_fingerprint(table, meta["data"])
        check_fingerprint(
            run_dir,
            stored,
            fingerprint,
            against=f"its recorded data now ({meta['data']})",
            who="load_sequence_run",
        )
        # the run's own sampled candidates (runs saved before this key: the default, 100)
        negatives = meta.get("num_negatives", NUM_EVAL_NEGATIVES)
        data = make_sequence_data(
            table, max_len=meta["max_len"], seed=meta["seed"], num_negatives=negatives
        )
    elif data.num_items != meta["model_kwargs"]["num_items"]:
        raise ValueError(
            f"load_sequence_run: {run_dir!r} was trained on "
            f"{meta['model_kwargs']['num_items']} items, the data has "
            f"{data.num_items}."
        )
    elif fingerprint is not None:
        against = f"run {data_from!r}" if data_from is not None else "the data given"
        check_fingerprint(run_dir, stored, fingerprint, against=against, who="load_sequence_run")
    return SequenceRun(run_dir, graphdef, params, data, meta, fingerprint)
