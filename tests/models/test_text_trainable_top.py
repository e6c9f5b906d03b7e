"""text-mf with trainable top encoder layers (ModelConfig.text_trainable_layers = k > 0)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from flax import nnx

from robustjax.losses import Term, clean_term, combine
from robustjax.losses.text_adversarial import make_text_adv_inputs, text_adversarial_term
from robustjax.models import ModelConfig, build_model
from robustjax.text import (
    encode_states,
    encode_texts,
    encoder_from_checkpoint,
    load_checkpoint,
    tokenize,
)
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
def ckpt(tmp_path_factory):
    from robustjax.text import write_tiny_checkpoint

    folder = write_tiny_checkpoint(str(tmp_path_factory.mktemp("enc")), hidden=H, num_layers=2)
    return load_checkpoint(folder)


def _build(ckpt, k):
    cfg = ModelConfig(
        name="text-mf", dim=D, text_encoder=ckpt.path, text_max_len=8, text_trainable_layers=k
    )
    return build_model(cfg, U, I, seed=0, item_texts=TEXTS)


def _leaf(params, path):
    for p in path.split("/"):
        params = params[int(p) if p.isdigit() else p]
    return params[...]


@pytest.mark.parametrize("k", [1, 2])
def test_fresh_top_reproduces_the_frozen_encoder(ckpt, k):
    fns, params = _build(ckpt, k)
    assert fns.frozen_params == ("items/top/states", "items/top/mask")
    assert fns.text.trainable_layers == k
    frozen = encode_texts(ckpt, TEXTS, max_len=8, cache_dir=None)
    np.testing.assert_allclose(fns.text.features(params), frozen, atol=2e-6)
    states, mask = encode_states(ckpt, TEXTS, stop_layer=2 - k, max_len=8)
    assert states.shape[:2] == mask.shape and states.shape[1] <= 8  # trimmed to the longest
    np.testing.assert_array_equal(_leaf(params, "items/top/states"), states)


def test_training_moves_the_top_layers_not_the_cached_states(ckpt):
    fns, params = _build(ckpt, 1)
    tx = with_frozen(optax.adam(1e-2), fns.frozen_params)
    loss = combine(bpr=Term(clean_term(fns)))

    @jax.jit
    def step(params, opt_state):
        (value, _), grads = jax.value_and_grad(
            lambda p: loss(p, BATCH, key=jax.random.key(0)), has_aux=True
        )(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, grads

    opt_state = tx.init(params)
    new, opt_state, first, grads = step(params, opt_state)
    assert float(jnp.max(jnp.abs(_leaf(grads, "items/top/layers/0/ff_out/kernel")))) > 0
    for _ in range(20):
        new, opt_state, value, _ = step(new, opt_state)
    assert float(value) < float(first)
    for leaf in fns.frozen_params:
        np.testing.assert_array_equal(_leaf(new, leaf), _leaf(params, leaf))
    moved = _leaf(new, "items/top/layers/0/query/kernel") - _leaf(
        params, "items/top/layers/0/query/kernel"
    )
    assert float(jnp.max(jnp.abs(moved))) > 1e-4
    # an attack's encoder carries the trained top: its features are the model's
    graphdef, enc_state = nnx.split(encoder_from_checkpoint(ckpt))
    enc = nnx.merge(graphdef, fns.text.encoder_state(new, graphdef, enc_state))
    tok = tokenize(ckpt, TEXTS, max_len=8)
    out = enc(jnp.asarray(tok.ids), jnp.asarray(tok.mask))
    np.testing.assert_allclose(out, fns.text.features(new), atol=2e-6)
    assert float(jnp.max(jnp.abs(out - encode_texts(ckpt, TEXTS, max_len=8)))) > 1e-4


def test_text_defence_reaches_the_top_layers(ckpt):
    fns, params = _build(ckpt, 1)
    inputs = make_text_adv_inputs(ckpt, TEXTS, max_len=8)

    def parts(p, eps):
        term = text_adversarial_term(fns, inputs.graphdef, eps=eps, items_per_step=I)
        obj = combine(bpr=Term(clean_term(fns)), text=Term(term))
        return obj(p, BATCH | {"inputs": inputs}, key=jax.random.key(0))[1]

    clean, at0 = parts(params, 0.0)["bpr"], parts(params, 0.0)["text"]
    np.testing.assert_allclose(at0, clean, rtol=1e-5)
    assert float(parts(params, 0.5)["text"]) >= float(clean)
    grads = jax.grad(lambda p: parts(p, 0.5)["text"])(params)
    assert float(jnp.max(jnp.abs(_leaf(grads, "items/top/layers/0/ff_in/kernel")))) > 0


def test_text_sasrec_top_reads_items_through_the_trained_layer(ckpt):
    from robustjax.models.text_sasrec import TextSASRec, with_text_top

    states, mask = encode_states(ckpt, TEXTS, stop_layer=1, max_len=8)
    states = np.concatenate([np.zeros_like(states[:1]), states])  # row 0: padding item
    mask = np.concatenate([np.zeros_like(mask[:1]), mask])
    model = TextSASRec(I, 5, D, num_blocks=1, dropout=0.0, text_dim=H, text_encoder=ckpt.path,
                       text_trainable_layers=1, text_tokens=states.shape[1], rngs=nnx.Rngs(0))  # fmt: skip
    assert model.frozen_params == ("items/top/states", "items/top/mask")
    graphdef, params = nnx.split(model, nnx.Param)
    params = with_text_top(graphdef, params, states, mask, encoder_from_checkpoint(ckpt))
    m = nnx.merge(graphdef, params)
    feats = m.items.text_features()
    assert not np.any(feats[0])  # the padding row pools nothing
    np.testing.assert_allclose(feats[1:], encode_texts(ckpt, TEXTS, max_len=8), atol=2e-6)
    assert m.item_table().shape == (I + 1, D)
    with pytest.raises(ValueError, match="with_text_top: states"):
        with_text_top(graphdef, params, states[1:], mask[1:], encoder_from_checkpoint(ckpt))


def test_trainable_layer_errors(ckpt):
    with pytest.raises(ValueError, match="text_trainable_layers=-1: expected an int >= 0"):
        ModelConfig(name="text-mf", text_trainable_layers=-1)
    with pytest.raises(ValueError, match="has only 2 layers"):
        _build(ckpt, 3)
    with pytest.raises(ValueError, match="stop_layer=5"):
        encode_states(ckpt, TEXTS, stop_layer=5)
