"""Discrete sequence attacks: budgets, layout, exclusions, brute-force references, SASRec."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax.attacks import (
    SEQUENCE_ATTACKS,
    apply_sequence_attack,
    convex_hull_perturbation,
    delete_gradient,
    delete_random,
    insert_gradient,
    insert_random,
    is_left_padded,
    substitute_gradient,
    substitute_random,
    truncate_recent,
)
from robustjax.models.sasrec import SASRec

I, L, D = 12, 6, 4
# Items <= 10 in the sequences; 11 and 12 (and one more id per row) are excluded.
SEQ = jnp.array(
    [
        [0, 0, 3, 5, 7, 2],
        [1, 4, 9, 10, 8, 6],
        [0, 0, 0, 0, 0, 4],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 6, 6, 1],
    ],
    jnp.int32,
)
EXCLUDE = jnp.array([[11, 12, 1], [11, 12, 2], [11, 12, 0], [11, 12, 3], [12, 11, 5]], jnp.int32)
TABLE = jnp.asarray(np.random.default_rng(0).normal(size=(I + 1, D)), jnp.float32)
W = jnp.asarray(np.random.default_rng(1).normal(size=(L, D)), jnp.float32)


def toy_loss(rows, ids):
    """Nonlinear, position-dependent loss on the real rows."""
    mask = (ids != 0).astype(rows.dtype)[..., None]
    return jnp.sum(jnp.tanh(rows + W[None]) * W[None] * mask, axis=(1, 2))


def _real(row):
    return [int(x) for x in row if x != 0]


def _greedy_match(out, orig):
    """Right-to-left greedy matching of ``out`` against ``orig`` (both item lists): the
    longest suffix of ``orig`` that is a subsequence of ``out``; returns (matched, extra)."""
    j, matched = len(orig) - 1, 0
    for x in reversed(out):
        if j >= 0 and x == orig[j]:
            j, matched = j - 1, matched + 1
    return matched, len(out) - matched


def check_invariants(kind, seq, out, budget, exclude):
    seq, out, exclude = np.asarray(seq), np.asarray(out), np.asarray(exclude)
    assert out.shape == seq.shape and out.dtype == seq.dtype
    assert np.all(np.asarray(is_left_padded(out))), out
    assert out.min() >= 0 and out.max() <= I
    for s, o, ex in zip(seq, out, exclude):
        rs, ro = _real(s), _real(o)
        assert not set(ro) & set(ex.tolist()) - {0}, (kind, ro, ex)
        if kind.startswith("substitute"):
            assert np.array_equal(s != 0, o != 0)
            assert np.sum(s != o) <= budget, (kind, s, o)
        elif kind.startswith("insert"):
            matched, extra = _greedy_match(ro, rs)
            assert len(rs) <= len(ro) <= min(len(rs) + budget, L)
            assert extra <= budget and matched >= min(len(rs), L - budget), (kind, s, o)
        else:  # delete / truncate: a subsequence, at most `budget` removed, one item kept
            matched, extra = _greedy_match(rs, ro)
            assert matched == len(ro), (kind, s, o)
            assert len(rs) - len(ro) <= budget
            assert len(ro) >= min(len(rs), 1)
            if kind == "truncate":
                keep = len(rs) - min(budget, max(len(rs) - 1, 0))
                assert ro == rs[:keep]


@functools.partial(jax.jit, static_argnames="budget")
def _all_attacks(seq, key, *, budget):
    """Every kind: {kind: [B, L]} (one compilation per budget)."""
    return {
        kind: apply_sequence_attack(
            kind, seq, budget, num_items=I, key=key, loss_fn=toy_loss, table=TABLE, exclude=EXCLUDE
        )
        for kind in SEQUENCE_ATTACKS
    }


@pytest.mark.parametrize("budget", [0, 2, 5])
def test_invariants(strict_promotion, budget):
    for seed in range(3):
        for kind, out in _all_attacks(SEQ, jax.random.key(seed), budget=budget).items():
            check_invariants(kind, SEQ, out, budget, EXCLUDE)
            if budget == 0:
                np.testing.assert_array_equal(out, SEQ)


@pytest.mark.slow
def test_eager_matches_jit(strict_promotion):
    key = jax.random.key(3)
    for fn in (lambda s: truncate_recent(s, 2), lambda s: delete_random(s, 2, key=key)):
        np.testing.assert_array_equal(fn(SEQ), jax.jit(fn)(SEQ))


def test_random_draws_are_uniform_over_allowed_items(strict_promotion):
    keys = jax.random.split(jax.random.key(0), 400)
    seq = SEQ[1:2]
    ex = jnp.array([[3, 5, 7, 2]], jnp.int32)  # so an inserted item is recognisable

    def draw(k):
        k_sub, k_ins = jax.random.split(k)
        return (
            substitute_random(seq, 1, I, key=k_sub, exclude=EXCLUDE[1:2]),
            insert_random(SEQ[:1], 1, I, key=k_ins, exclude=ex),
        )

    out, ins = jax.jit(jax.vmap(draw))(keys)
    changed = np.asarray(out != seq[None])
    assert np.all(changed.sum(axis=-1) == 1)
    orig = np.broadcast_to(np.asarray(seq)[None], out.shape)[changed]
    new = np.asarray(out)[changed]
    assert np.all(new != orig) and not set(new.tolist()) & {0, 2, 11, 12}
    assert set(new.tolist()) == set(range(1, 11)) - {2}  # all allowed items are reached
    counts = np.bincount(np.asarray(out)[changed], minlength=I + 1)
    assert counts.max() < 3 * counts[counts > 0].min()
    # insertion into [3, 5, 7, 2]: every one of the 5 gaps is used, the order is kept
    gaps = set()
    for r in np.asarray(ins)[:, 0]:
        items = _real(r)
        gap = next(i for i, x in enumerate(items) if x not in (3, 5, 7, 2))
        assert items[:gap] + items[gap + 1 :] == [3, 5, 7, 2]
        gaps.add(gap)
    assert gaps == set(range(5))


def _ref_substitution(method, budget, step):
    """Numpy brute force: top-|g| positions, then nearest / first-order items."""
    g = np.asarray(jax.grad(lambda r: jnp.sum(toy_loss(r, SEQ)))(TABLE[SEQ]), np.float64)
    table, seq = np.asarray(TABLE, np.float64), np.asarray(SEQ)
    out = seq.copy()
    for b in range(seq.shape[0]):
        real = np.flatnonzero(seq[b])
        norms = np.linalg.norm(g[b, real], axis=-1)
        for t in real[np.argsort(-norms)[:budget]]:
            allowed = [
                j for j in range(1, I + 1) if j != seq[b, t] and j not in np.asarray(EXCLUDE[b])
            ]
            if method == "nearest":
                target = table[seq[b, t]] + step * g[b, t] / np.linalg.norm(g[b, t])
                score = -np.linalg.norm(table[allowed] - target, axis=-1)
            else:
                score = (table[allowed] - table[seq[b, t]]) @ g[b, t]
            out[b, t] = allowed[int(np.argmax(score))]
    return out


@jax.jit
@chex.assert_max_traces(n=1)  # step is traced: new values do not recompile
def _gradient_substitutions(step):
    return {
        (method, budget): substitute_gradient(
            toy_loss, TABLE, SEQ, budget, exclude=EXCLUDE, step=step, method=method
        )
        for method in ("nearest", "first_order")
        for budget in (1, 3)
    }


@pytest.mark.parametrize("step", [1.0, 0.3])
def test_substitute_gradient_matches_brute_force(strict_promotion, step):
    for (method, budget), out in _gradient_substitutions(jnp.float32(step)).items():
        np.testing.assert_array_equal(
            out, _ref_substitution(method, budget, step), err_msg=f"{method} budget={budget}"
        )


@pytest.mark.slow
def test_linear_loss_reaches_the_exact_optimum(strict_promotion):
    """loss = sum_t alpha_t u . row_t on a constant sequence: the budget-k optimum (brute
    force over all position sets and items) is what first-order (and greedy) HotFlip find."""
    i, length = 6, 4
    rng = np.random.default_rng(2)
    table = rng.normal(size=(i + 1, 3))
    table /= np.linalg.norm(table, axis=-1, keepdims=True)
    u = np.array([1.0, 0.0, 0.0])
    orig = int(np.argmin(table[1:] @ u)) + 1  # the worst item: every change helps
    alpha = np.array([0.5, 2.0, 1.0, 3.0])
    seq = jnp.full((1, length), orig, jnp.int32)
    coef = jnp.asarray(alpha[:, None] * u[None], jnp.float32)

    def loss(rows, ids):
        return jnp.sum(rows * coef[None], axis=(1, 2))

    def value(ids):
        return float(np.sum(table[np.asarray(ids)[0]] @ u * alpha))

    exclude = jnp.array([[int(np.argmax(table[1:] @ u)) + 1]], jnp.int32)  # ban the best
    allowed = [j for j in range(1, i + 1) if j != int(exclude[0, 0])]
    tbl = jnp.asarray(table, jnp.float32)

    @functools.partial(jax.jit, static_argnames="budget")
    def run(keys, *, budget):
        sub = functools.partial(substitute_gradient, loss, tbl, seq, budget, exclude=exclude)
        rnd = jax.vmap(lambda k: substitute_random(seq, budget, i, key=k, exclude=exclude))
        return (
            [
                sub(method="first_order"),
                sub(method="first_order", iterative=True),
                sub(method="nearest", step=1e4),
            ],
            rnd(keys),
        )

    for budget in (3,):
        best = max(
            value(_assign(orig, length, pos, items))
            for k in range(budget + 1)
            for pos in itertools.combinations(range(length), k)
            for items in itertools.product(allowed, repeat=k)
        )
        outs, rnd = run(jax.random.split(jax.random.key(0), 16), budget=budget)
        for name, out in zip(("first_order", "iterative", "nearest"), outs):
            assert value(out) == pytest.approx(best, rel=1e-5), (budget, name)
        assert all(value(r) <= best + 1e-9 for r in rnd)


def _assign(orig, length, pos, items):
    row = np.full((1, length), orig)
    row[0, list(pos)] = items
    return row


def test_delete_and_truncate_by_hand(strict_promotion):
    norms = jnp.array([9.0, 9.0, 1.0, 4.0, 3.0, 2.0])  # |d loss / d row| per position
    coef = norms[:, None] * jnp.array([1.0, 0.0, 0.0, 0.0])[None]

    def lin(rows, ids):
        return jnp.sum(rows * coef[None], axis=(1, 2))

    seq = jnp.array([[0, 0, 3, 5, 7, 2], [0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 8, 9]], jnp.int32)
    outs = jax.jit(
        lambda s: (
            delete_gradient(lin, TABLE, s, 2),
            delete_gradient(lin, TABLE, s, 5),
            truncate_recent(s, 2),
            truncate_recent(s, 5),
        )
    )(seq)
    np.testing.assert_array_equal(
        outs[0],  # deletes the largest norms: 5 and 7; 8 (3 > 2)
        [[0, 0, 0, 0, 3, 2], [0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 9]],
    )
    np.testing.assert_array_equal(
        outs[1],  # one item always stays
        [[0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 9]],
    )
    np.testing.assert_array_equal(
        outs[2], [[0, 0, 0, 0, 3, 5], [0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 8]]
    )
    np.testing.assert_array_equal(
        outs[3], [[0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 8]]
    )


def test_insert_gradient_appends_first_order_best(strict_promotion):
    c = jnp.asarray(np.random.default_rng(3).normal(size=D), jnp.float32)

    def last_row(rows, ids):
        return rows[:, -1] @ c

    scores = np.asarray(TABLE @ c)
    out = np.asarray(
        jax.jit(lambda s: insert_gradient(last_row, TABLE, s, 2, exclude=EXCLUDE))(SEQ)
    )
    for b in range(SEQ.shape[0]):
        ban = set(np.asarray(EXCLUDE[b]).tolist()) | {0}
        best = max((j for j in range(1, I + 1) if j not in ban), key=lambda j: scores[j])
        np.testing.assert_array_equal(out[b, : L - 2], SEQ[b, 2:])
        np.testing.assert_array_equal(out[b, L - 2 :], [best, best])


@functools.partial(jax.jit, static_argnames=("budget", "steps"))
def _hull(table=TABLE, init_logit=0.0, *, budget=None, steps=10):
    return convex_hull_perturbation(
        toy_loss,
        table,
        SEQ,
        num_candidates=4,
        steps=steps,
        step_size=0.5,
        key=jax.random.key(1),
        budget=budget,
        init_logit=init_logit,
        exclude=EXCLUDE,
    )


@jax.jit
@chex.assert_max_traces(n=1)  # init_logit and step_size are traced
def _hull_traced(table, init_logit, step_size):
    return convex_hull_perturbation(
        toy_loss,
        table,
        SEQ,
        num_candidates=4,
        steps=10,
        step_size=step_size,
        key=jax.random.key(1),
        init_logit=init_logit,
        exclude=EXCLUDE,
    )


@pytest.mark.parametrize("budget", [None, 2])
def test_convex_hull_rows_in_hull_and_loss_rises(strict_promotion, budget):
    res = (
        _hull_traced(TABLE, jnp.float32(0.0), jnp.float32(0.5))
        if budget is None
        else _hull(budget=budget)
    )
    w, cands, rows = map(np.asarray, (res.weights, res.cands, res.rows))
    seq, clean_rows = np.asarray(SEQ), np.asarray(TABLE[SEQ])
    assert w.shape == cands.shape == (*seq.shape, 5) and rows.shape == clean_rows.shape
    assert np.all(w >= 0) and np.allclose(w.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        rows, np.einsum("blm,blmd->bld", w, np.asarray(TABLE)[cands]), atol=1e-5
    )
    np.testing.assert_array_equal(cands[..., 0], seq)
    pad = seq == 0
    np.testing.assert_array_equal(rows[pad], clean_rows[pad])  # padding untouched
    np.testing.assert_array_equal(cands[pad], 0)
    real_cands = cands[~pad]
    assert real_cands.min() >= 1 and real_cands.max() <= I
    for b in range(seq.shape[0]):
        extra = cands[b, seq[b] != 0, 1:].ravel().tolist()
        assert not set(extra) & set(np.asarray(EXCLUDE[b]).tolist()), (b, extra)
    changed = np.any(rows != clean_rows, axis=-1).sum(axis=1)
    assert np.all(changed <= (L if budget is None else budget))
    clean = np.asarray(toy_loss(TABLE[SEQ], SEQ))
    after = np.asarray(toy_loss(res.rows, SEQ))
    # the ascent starts from the uniform mixture (init_logit=0) at perturbed positions
    sel = np.any(cands != seq[..., None], axis=-1)[..., None]
    start_rows = np.where(sel, np.asarray(TABLE)[cands].mean(axis=2), clean_rows)
    start = np.asarray(toy_loss(jnp.asarray(start_rows, jnp.float32), SEQ))
    assert np.all(after >= clean - 1e-5) and np.all(after >= start - 1e-5)
    assert np.mean(after - clean) > 0.1


def test_convex_hull_budget_zero_and_gradient_to_table(strict_promotion):
    none = _hull(budget=0, steps=0)
    np.testing.assert_array_equal(none.rows, TABLE[SEQ])  # budget 0: clean rows
    res = _hull_traced(TABLE, jnp.float32(3.0), jnp.float32(0.25))

    def outer(table):
        return jnp.sum(toy_loss(_hull_traced(table, jnp.float32(3.0), jnp.float32(0.25)).rows, SEQ))

    def fixed(table):  # Danskin: the same weights and candidates, held constant
        rows = jnp.einsum("blm,blmd->bld", res.weights, table[res.cands])
        return jnp.sum(toy_loss(rows, SEQ))

    g, g_ref = jax.jit(jax.grad(outer))(TABLE), jax.jit(jax.grad(fixed))(TABLE)
    np.testing.assert_allclose(g, g_ref, atol=1e-5)
    assert np.abs(np.asarray(g)).sum() > 0


@pytest.mark.slow
def test_sasrec_gradient_substitution_beats_random(strict_promotion):
    """Tiny untrained SASRec, loss = -log softmax of the target among 5 candidates: over 64
    sequences, gradient substitution (2 items) raises the mean loss far more than random
    substitution does on average over 8 keys (margins ~0.7-1.0 vs ~0.1 across seeds)."""
    n_items, length, dim, batch, n_cands = 30, 8, 16, 64, 5
    model = SASRec(n_items, length, dim, num_blocks=1, dropout=0.0, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, length + 1, batch)
    seq = np.zeros((batch, length), np.int32)
    for b in range(batch):
        seq[b, length - lengths[b] :] = rng.integers(1, n_items + 1, lengths[b])
    cands = jnp.asarray(
        np.stack(
            [rng.choice(np.arange(1, n_items + 1), n_cands, replace=False) for _ in range(batch)]
        ).astype(np.int32)
    )
    seq = jnp.asarray(seq)

    @jax.jit
    def run(params, seq, cands, key):
        m = nnx.merge(graphdef, params)
        table = m.items.embedding[...]

        def loss_fn(rows, ids):
            hidden = m.encode(rows * np.sqrt(dim).astype(np.float32), ids, deterministic=True)[
                :, -1
            ]
            return -jax.nn.log_softmax(m.score_items(hidden, cands), axis=-1)[:, 0]

        def loss(ids):
            return jnp.mean(loss_fn(table[ids], ids))

        rand = jax.vmap(lambda k: loss(substitute_random(seq, 2, n_items, key=k, exclude=cands)))(
            jax.random.split(key, 8)
        )
        grads = [
            loss(substitute_gradient(loss_fn, table, seq, 2, exclude=cands, method=mt))
            for mt in ("nearest", "first_order")
        ]
        return loss(seq), jnp.mean(rand), grads

    clean, rand, (nearest, first_order) = run(params, seq, cands, jax.random.key(0))
    gain_rand = float(rand - clean)
    for gain in (float(nearest - clean), float(first_order - clean)):
        assert gain > 0.4 and gain > gain_rand + 0.3, (gain, gain_rand)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "swap"}, "kind='swap' is unknown"),
        ({"budget": -1}, "budget=-1 must satisfy 0 <= budget < 6"),
        ({"budget": 6}, "budget=6 must satisfy"),
        ({"kind": "substitute_gradient", "loss_fn": None}, "needs loss_fn="),
        ({"kind": "insert_gradient", "num_items": 5}, "table has 13 rows but num_items=5"),
        ({"exclude": jnp.zeros((2, 3), jnp.int32)}, "exclude must be \\[B, C\\]"),
        ({"kind": "substitute_gradient", "method": "far"}, "method='far' is unknown"),
    ],
)
def test_errors(kwargs, match):
    args = {
        "kind": "substitute_random",
        "budget": 1,
        "num_items": I,
        "loss_fn": toy_loss,
        "table": TABLE,
        "exclude": EXCLUDE,
        **kwargs,
    }
    kind, budget = args.pop("kind"), args.pop("budget")
    with pytest.raises(ValueError, match=match):
        apply_sequence_attack(kind, SEQ, budget, key=jax.random.key(0), **args)


def test_type_errors():
    with pytest.raises(TypeError, match="budget must be a Python int"):
        truncate_recent(SEQ, 1.0)
    with pytest.raises(TypeError, match="seq_ids must be integer"):
        truncate_recent(SEQ.astype(jnp.float32), 1)
    with pytest.raises(ValueError, match="loss_fn must return one loss per sequence"):
        delete_gradient(lambda r, i: jnp.sum(r), TABLE, SEQ, 1)
    with pytest.raises(ValueError, match="num_candidates=0"):
        convex_hull_perturbation(
            toy_loss, TABLE, SEQ, num_candidates=0, steps=1, step_size=0.1, key=jax.random.key(0)
        )
