"""The models/ boundary: ModelFns is equal and hashed by value (a static jit argument that
does not recompile for an equal instance); the sequential models share one transformer
block and keep their parameter paths (checkpoints of earlier runs restore by them)."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax.models.base import Bound, FrozenMap, MergedMethod, ModelFns
from robustjax.models.bert4rec import BERT4Rec
from robustjax.models.mf import MatrixFactorization, mf_fns
from robustjax.models.neumf import NeuMF, neumf_fns
from robustjax.models.sasrec import SASRec
from robustjax.models.transformer import TransformerBlock, attention_mask

U, I, D = 5, 7, 3


def _mf(seed: int, num_items: int = I):
    return mf_fns(MatrixFactorization(U, num_items, D, rngs=nnx.Rngs(seed)))


def _neumf(seed: int):
    model = NeuMF(U, I, gmf_dim=2, mlp_dim=2, hidden=(4,), rngs=nnx.Rngs(seed))
    return neumf_fns(model)


def _plain(**overrides) -> ModelFns:
    fields = {
        "embed": jnp.add,
        "score": jnp.multiply,
        "score_all": jnp.subtract,
        "score_items": jnp.divide,
        "embedding_names": ("user", "pos"),
        "num_users": U,
        "num_items": I,
        "lookups": {"user": ("user", "user"), "pos": ("item", "pos")},
        "table_sizes": {"user": U, "item": I},
    }
    return ModelFns(**{**fields, **overrides})


def test_frozen_map_is_a_hashable_mapping():
    m = FrozenMap({"a": 1, "b": 2})
    assert m == {"b": 2, "a": 1} and {"a": 1, "b": 2} == m
    assert m != {"a": 1} and m != ("a", "b")
    assert hash(m) == hash(FrozenMap([("b", 2), ("a", 1)]))
    assert m["a"] == 1 and list(m) == ["a", "b"] and len(m) == 2 and dict(m) == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        m["c"] = 3  # type: ignore[index]
    with pytest.raises(AttributeError, match="immutable"):
        m._items = {}  # type: ignore[misc]


def test_equal_by_value_and_hashable():
    a, b = _plain(), _plain(lookups=dict(_plain().lookups), embedding_names=["user", "pos"])
    assert a is not b and a == b and hash(a) == hash(b)
    assert a.embedding_names == ("user", "pos") and isinstance(a.lookups, FrozenMap)
    assert a.lookups["pos"] == ("item", "pos") and a.table_sizes == {"user": U, "item": I}
    assert a != _plain(num_items=I + 1) and a != _plain(score=jnp.maximum)
    assert a != _plain(table_sizes={"user": U, "item": I + 1})
    assert dataclasses.replace(a, bilinear=True) != a
    assert len({a, b, _plain(bilinear=True)}) == 2


def test_default_mappings_are_empty_and_hashable():
    fns = ModelFns(jnp.add, jnp.add, jnp.add, jnp.add, ("user",), U, I)
    assert fns.lookups == {} and fns.table_sizes == {} and hash(fns) == hash(fns)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lookups": {"user": ["user", "user"], "pos": ("item", "pos")}}, None),
        ({"table_sizes": {"user": [U]}}, "hashable"),
        ({"embedding_names": "user"}, "embedding_names"),
        ({"lookups": 3}, "lookups"),
    ],
)
def test_construction_validates(overrides, match):
    if match is None:  # lists inside lookups are made tuples
        assert _plain(**overrides) == _plain()
        return
    with pytest.raises(TypeError, match=match):
        _plain(**overrides)


@pytest.mark.parametrize("build", [_mf, _neumf])
def test_models_built_twice_are_equal(build):
    (a, pa), (b, pb) = build(0), build(1)
    assert a == b and hash(a) == hash(b)
    assert isinstance(a.embed, MergedMethod) and isinstance(a.set_tables, Bound)
    batch = {k: jnp.array([0, 1], jnp.int32) for k in ("user", "pos", "neg")}
    chex.assert_trees_all_equal(a.embed(pa, batch), b.embed(pa, batch))
    np.testing.assert_array_equal(a.score_all(pa, batch["user"]), b.score_all(pa, batch["user"]))
    tables = a.get_tables(pa)
    chex.assert_trees_all_equal(b.get_tables(b.set_tables(pb, tables)), tables)


def test_different_shapes_differ():
    assert _mf(0)[0] != _mf(0, num_items=I + 1)[0]


def test_static_jit_argument_traces_once_for_equal_instances():
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def full_scores(fns, params, users):
        traces.append(fns)
        return fns.score_all(params, users)

    (a, pa), (b, pb) = _mf(0), _mf(1)
    users = jnp.arange(U, dtype=jnp.int32)
    np.testing.assert_array_equal(full_scores(a, pa, users), a.score_all(pa, users))
    np.testing.assert_array_equal(full_scores(b, pb, users), b.score_all(pb, users))
    full_scores(b, pb, users)
    assert len(traces) == 1
    full_scores(_mf(0, num_items=I + 1)[0], _mf(0, num_items=I + 1)[1], users)
    assert len(traces) == 2


_BLOCK = {f"{m}.{w}" for m in ("q", "k", "v", "out", "ff1", "ff2") for w in ("kernel", "bias")}
_BLOCK |= {f"{m}.{w}" for m in ("ln_attn", "ln_ff") for w in ("scale", "bias")}


@pytest.mark.parametrize(
    ("cls", "top", "ff_mult"),
    [
        (SASRec, {"ln_out.scale", "ln_out.bias"}, 1),
        (
            BERT4Rec,
            {"ln_emb.scale", "ln_emb.bias", "head.kernel", "head.bias", "ln_head.scale"}
            | {"ln_head.bias", "out_bias"},
            4,
        ),
    ],
)
def test_sequence_model_parameter_paths_are_stable(cls, top, ff_mult):
    model = cls(I, 4, D + 1, num_blocks=2, num_heads=1, rngs=nnx.Rngs(0))
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    paths = {".".join(map(str, p)) for p, _ in flat}
    expected = {"items.embedding", "positions.embedding"} | top
    expected |= {f"blocks.{i}.{p}" for i in range(2) for p in _BLOCK}
    assert paths == expected
    assert all(isinstance(b, TransformerBlock) for b in model.blocks)
    assert model.blocks[1].ff1.kernel.shape == (D + 1, ff_mult * (D + 1))


def test_attention_mask_causal_and_padding():
    ids = jnp.array([[0, 2, 3]], jnp.int32)
    real = np.array([[[False, True, True]]])
    np.testing.assert_array_equal(attention_mask(ids, causal=False), real)
    causal = np.tril(np.ones((3, 3), bool))[None] & real
    np.testing.assert_array_equal(attention_mask(ids, causal=True), causal)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_heads": 2}, "num_heads=2 must divide dim=3"), ({"activation": "tanh"}, "tanh")],
)
def test_transformer_block_errors(kwargs, match):
    args = {"num_heads": 1, "activation": "relu", **kwargs}
    with pytest.raises(ValueError, match=match):
        TransformerBlock(
            3, ff_dim=3, norm_first=True, epsilon=1e-6, rngs=nnx.Rngs(0), where="Test", **args
        )
