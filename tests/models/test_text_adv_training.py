"""Adversarial training of text-mf on the word embeddings of item texts (method="text")."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax.data.negatives import build_train_arrays
from robustjax.losses import Term, clean_term, combine
from robustjax.losses.combine import masked_mean
from robustjax.losses.text_adversarial import (
    TextAdvInputs,
    make_text_adv_inputs,
    sample_batch_items,
    text_adversarial_term,
)
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import epoch_permutation, init_state, make_train_epoch
from robustjax.train.sparse_step import with_frozen

U, I, H, D = 5, 8, 16, 4
TEXTS = ["a comedy", "a drama film", "horror film", "space opera", "war film", "a musical",
         "new comedy", "new horror western"]  # fmt: skip
BATCH = {
    "user": jnp.array([0, 1, 2, 3, 4, 0], jnp.int32),
    "pos": jnp.array([0, 1, 2, 3, 4, 5], jnp.int32),
    "neg": jnp.array([6, 7, 0, 1, 2, 3], jnp.int32),
    "mask": jnp.array([1, 1, 1, 1, 1, 0], jnp.float32),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from robustjax.text import load_checkpoint, write_tiny_checkpoint

    folder = write_tiny_checkpoint(str(tmp_path_factory.mktemp("enc")), hidden=H, num_layers=1)
    cfg = ModelConfig(name="text-mf", dim=D, text_encoder=folder, text_max_len=8)
    fns, params = build_model(cfg, U, I, seed=0, item_texts=TEXTS)
    inputs = make_text_adv_inputs(load_checkpoint(folder), TEXTS, max_len=8)
    return fns, params, inputs, load_checkpoint(folder)


def _parts(fns, params, inputs, *, eps, m=I, budget_kind="absolute", kind="fgsm"):
    term = text_adversarial_term(
        fns, inputs.graphdef, eps=eps, items_per_step=m, kind=kind, num_steps=3,
        budget_kind=budget_kind,
    )  # fmt: skip
    obj = combine(bpr=Term(clean_term(fns)), text=Term(term))
    return obj(params, BATCH | {"inputs": inputs}, key=jax.random.key(0))[1]


def test_inputs_trim_padding_and_mark_real_tokens_only(setup):
    _, _, inputs, ckpt = setup
    ids, mask, editable = map(np.asarray, (inputs.ids, inputs.mask, inputs.editable))
    assert ids.shape == mask.shape == editable.shape == (I, mask.sum(1).max())
    assert editable.dtype == np.float32
    special = np.isin(ids, [ckpt.cls_id, ckpt.sep_id, ckpt.pad_id])
    assert np.all(editable[special] == 0) and np.all(editable[mask == 0] == 0)
    assert np.all(editable[(mask == 1) & ~special] == 1)
    assert np.all(ids[:, 0] == ckpt.cls_id)


def test_eps_zero_equals_clean(setup):
    fns, params, inputs, _ = setup
    parts = _parts(fns, params, inputs, eps=0.0)
    np.testing.assert_allclose(parts["text"], parts["bpr"], rtol=1e-5)


@pytest.mark.parametrize("budget_kind", ["absolute", "relative"])
@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_adversarial_loss_not_below_clean_and_inside_ball(setup, budget_kind, kind):
    fns, params, inputs, _ = setup
    parts = _parts(fns, params, inputs, eps=0.3, budget_kind=budget_kind, kind=kind)
    assert parts["text"] >= parts["bpr"]
    assert parts["check/budget_excess/text"] <= 1e-4


@pytest.mark.slow
def test_sampled_items_cover_only_their_examples(setup):
    fns, params, inputs, _ = setup
    # one sampled item: the term is the mean over the examples that read it
    parts = _parts(fns, params, inputs, eps=0.0, m=1)
    items, real = sample_batch_items(
        BATCH["pos"], BATCH["neg"], BATCH["mask"], I, 1, key=jax.random.split(
            jax.random.key(0), 2)[1]
    )  # fmt: skip
    covered = ((BATCH["pos"] == items[0]) | (BATCH["neg"] == items[0])) & (BATCH["mask"] > 0)
    clean = clean_term(fns)(params, BATCH, key=None)
    expected = masked_mean(clean, covered)
    np.testing.assert_allclose(parts["text"], expected, rtol=1e-5)
    assert float(real[0]) == 1.0


def test_sample_batch_items_distinct_and_present():
    pos = jnp.array([3, 3, 5, 9], jnp.int32)
    neg = jnp.array([[1, 2], [1, 2], [7, 7], [0, 4]], jnp.int32)
    valid = jnp.array([1, 1, 1, 0], jnp.float32)  # the last row is padding
    items, real = sample_batch_items(pos, neg, valid, 10, 8, key=jax.random.key(1))
    assert items.dtype == jnp.int32 and real.dtype == jnp.float32 and items.shape == (8,)
    chosen = set(np.asarray(items)[np.asarray(real) > 0].tolist())
    assert chosen == {1, 2, 3, 5, 7}  # 6 real slots would need 6 present items: 5 exist
    assert len(set(np.asarray(items).tolist())) == 8


def test_training_keeps_frozen_leaves_and_compiles_once(setup):
    fns, params, inputs, _ = setup
    adv = AdvConfig(method="text", eps=0.2, weight=1.0, text_items_per_step=3)
    (phase,) = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=2, text_inputs=inputs)
    assert phase.inputs is inputs and phase.name == "text"
    tx = with_frozen(optax.adam(0.05), fns.frozen_params)
    epoch = make_train_epoch(phase.objective, tx)
    data = build_train_arrays(np.arange(U), np.arange(U) % I, U, I)
    state = init_state(jax.tree.map(jnp.copy, params), tx)
    enc_before = jax.tree.map(np.asarray, inputs.encoder)
    for e in range(2):
        perm = jnp.asarray(epoch_permutation(U, 4, seed=0, epoch=e))
        state, metrics = epoch(state, perm, data, jax.random.key(e), inputs)
    assert np.isfinite(float(metrics["text"])) and "check/budget_excess/text" in metrics
    assert epoch._cache_size() == 1
    new = state.params
    np.testing.assert_array_equal(new["items"]["features"][...], params["items"]["features"][...])
    assert not np.allclose(new["users"]["embedding"][...], params["users"]["embedding"][...])
    assert not np.allclose(
        new["items"]["proj"]["kernel"][...], params["items"]["proj"]["kernel"][...]
    )
    jax.tree.map(
        np.testing.assert_array_equal, enc_before, jax.tree.map(np.asarray, inputs.encoder)
    )


def test_errors_name_the_problem(setup):
    fns, _, inputs, _ = setup
    mf, _ = build_model(ModelConfig(name="mf", dim=D), U, I, seed=0)
    adv = AdvConfig(method="text", eps=0.1)
    with pytest.raises(ValueError, match="no text tower"):
        build_phases(mf, loss="bpr", l2=0.0, adv=adv, epochs=2, text_inputs=inputs)
    with pytest.raises(TypeError, match="text_inputs=TextAdvInputs"):
        build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=2)
    with pytest.raises(ValueError, match="text_items_per_step"):
        AdvConfig(method="text", text_items_per_step=0)
    with pytest.raises(ValueError, match="text_attack"):
        AdvConfig(method="text", text_attack="hotflip")
    assert isinstance(inputs, TextAdvInputs)


def test_config_accepts_text_for_text_models_only():
    from robustjax.config import apply_overrides
    from robustjax.experiments import get_config

    get_config("text-mf-adv").validate()
    with pytest.raises(ValueError, match=r"method='text' does not apply to model 'mf'"):
        apply_overrides(get_config("text-mf-adv"), ["model.name=mf"])


@pytest.mark.slow
def test_text_mf_adv_experiment_runs_tiny_on_ml100k(tmp_path, shared_data):
    import json
    import os

    from robustjax.cli.main import main
    from robustjax.text import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(str(tmp_path / "enc"), hidden=16, num_layers=1)
    out = str(tmp_path / "run")
    args = ["train", "--experiment", "text-mf-adv", "--tiny", "--no-progress", "--out", out,
            "--data", os.path.join(shared_data, "ml-100k"),
            "--set", f"model.text_encoder={ckpt}"]  # fmt: skip
    assert main(args) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert any(k.startswith("test_cold/") for k in metrics)
    with open(os.path.join(out, "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    assert [r.get("phase") for r in history] == ["clean", "clean", "text"]
    assert np.isfinite(history[-1]["text"])
    # the frozen encoder is not saved with the run: only the model's own parameters
    names = set(np.load(os.path.join(out, "checkpoint", "params.npz")).files)
    assert not any("layers" in n or "word" in n for n in names), sorted(names)
