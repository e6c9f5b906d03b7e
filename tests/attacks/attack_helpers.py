"""Shared tiny fixtures for the attack tests (numpy reference norms, small losses)."""

import jax
import jax.numpy as jnp
import numpy as np

B, N, D = 4, 3, 5


def make_emb(seed=0, neg_rows=True):
    rng = np.random.default_rng(seed)
    emb = {
        "user": rng.normal(size=(B, D)),
        "pos": rng.normal(size=(B, D)),
        "neg": rng.normal(size=(B, N, D)) if neg_rows else rng.normal(size=(B, D)),
    }
    return {k: jnp.asarray(v, jnp.float32) for k, v in emb.items()}


def bpr_loss(emb):
    """softplus(mean-free BPR) per example; neg may be [B, D] or [B, N, D]."""
    u, p, n = emb["user"], emb["pos"], emb["neg"]
    s_pos = jnp.sum(u * p, axis=-1)
    if n.ndim == 3:
        s_neg = jnp.sum(u[:, None, :] * n, axis=-1)
        return jnp.mean(jax.nn.softplus(s_neg - s_pos[:, None]), axis=-1)
    return jax.nn.softplus(jnp.sum(u * n, axis=-1) - s_pos)


def np_unit_norms(delta, names, norm, scope):
    """Norms of every scope unit, computed independently with numpy (float64)."""
    xs = [np.asarray(delta[n], np.float64) for n in names]
    if norm == "l2":
        f_row = lambda x: np.sqrt(np.sum(x**2, axis=-1)).ravel()
        f_ex = lambda x: np.sum(x.reshape(x.shape[0], -1) ** 2, axis=1)
        if scope == "row":
            return np.concatenate([f_row(x) for x in xs])
        if scope == "example":
            return np.sqrt(sum(f_ex(x) for x in xs))
        return np.array([np.sqrt(sum(np.sum(x**2) for x in xs))])
    if scope == "row":
        return np.concatenate([np.max(np.abs(x), axis=-1).ravel() for x in xs])
    if scope == "example":
        return np.max(
            np.stack([np.max(np.abs(x.reshape(x.shape[0], -1)), axis=1) for x in xs]), axis=0
        )
    return np.array([max(np.max(np.abs(x)) for x in xs)])


def assert_in_ball(delta, names, eps, norm, scope, rtol=1e-5):
    ns = np_unit_norms(delta, names, norm, scope)
    assert np.all(ns <= eps * (1 + rtol) + 1e-30), (norm, scope, eps, ns.max())
    return ns
