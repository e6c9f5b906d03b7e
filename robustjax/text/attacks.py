"""Attacks that rewrite an item's text to promote the item (text-aware recommenders).

A text model scores user ``u`` and item ``t`` from the item's text through the frozen
encoder and the item tower: ``s(u, t) = score(e_u, tower(encoder(text_t), t))``. The
attacker changes only the target's text and sees only training data. The attacks raise
the label-free objective of :mod:`robustjax.text.objective` (a smooth hit rate of the
target over the users who never saw it), re-exported here with its problem and model
types.

Attacks (shape letters: ``T`` tokens, ``H`` encoder width, ``V`` vocabulary, ``C``
re-scored candidates):

* :func:`perturb_word_embeddings`: FGSM/PGD (``robustjax.attacks`` registry functions, with
  every norm, scope and budget kind of the library) on the word embeddings of the editable
  tokens, through ``encoder.encode_embeds`` and the tower.
* :func:`substitute_gradient`: HotFlip (Ebrahimi et al., 2018). The first-order gain of
  putting word ``w`` at position ``p`` is ``g_p . (E_w - E_{x_p})`` with ``g`` the
  objective's gradient at the word embeddings. Greedy, one position per edit, up to ``k``
  edits; with ``rescore=C`` the top-C (position, word) pairs are scored by the true
  objective (C encoder passes) and the best is kept only if it raises the objective, so
  the objective never decreases; with ``rescore=0`` the top pair by gain is taken.
* :func:`substitute_random`: ``k`` distinct random editable positions, random words.

Editable positions are real single-piece words: not ``[CLS]``/``[SEP]``/padding, not a
``##`` continuation piece and not followed by one, so a substitution keeps the word
boundaries and the rewritten text detokenizes to a plain string. Inserted words are
vocabulary entries that are neither special (``ckpt.special_ids``), nor bracketed
(``[unused0]``), nor ``##`` pieces (:func:`allowed_words`).
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Bool, Float, Int, PRNGKeyArray

from robustjax.attacks.budget import relative_budget
from robustjax.attacks.registry import EMBEDDING_ATTACKS
from robustjax.text.objective import (
    OBJECTIVES,
    TargetProblem,
    TextModel,
    check_objective,
    make_problem,
    objective_from_text,
    text_objective,
)
from robustjax.types import Array

CONTINUOUS_KINDS = ("fgsm", "pgd")


class Passes(NamedTuple):
    """Encoder work spent by an attack: texts run forward, and gradient (backward) passes."""

    forward: int = 0
    backward: int = 0


class TextEdit(NamedTuple):
    """One discrete attack's outcome on one target text.

    Attributes:
      ids: int32 ``[T]`` the rewritten token ids (mask unchanged).
      steps: ``[k + 1]`` int32 ``[T]`` rows: ``steps[j]`` is the text after ``j`` edits
        (greedy and the random draw are nested, so ``steps[j]`` is the attack at budget
        ``j``; an early stop repeats the last text).
      passes: ``[k + 1]`` :class:`Passes` spent to reach ``steps[j]``.
    """

    ids: np.ndarray
    steps: list
    passes: list


def _check_budget(budget, where: str) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(
            f"{where}: budget={budget!r} must be an integer >= 0 (the number of tokens "
            "edited); use perturb_word_embeddings for real-valued radii."
        )
    return int(budget)


def allowed_words(ckpt) -> Bool[np.ndarray, " V"]:
    """bool ``[V]``: vocabulary ids an attack may insert (whole words only: not special,
    not bracketed like ``[unused0]``, not ``##`` continuation pieces)."""
    ok = np.zeros(ckpt.config.vocab_size, bool)
    for token, i in ckpt.tokenizer.get_vocab().items():
        if i < ok.size:
            ok[i] = not (token.startswith("##") or (token.startswith("[") and token.endswith("]")))
    ok[list(ckpt.special_ids)] = False
    return ok


def editable_positions(ckpt, ids: Int[np.ndarray, " T"], mask: Int[np.ndarray, " T"]) -> np.ndarray:
    """bool ``[T]``: real single-piece word positions (module docstring)."""
    ids, mask = np.asarray(ids), np.asarray(mask)
    vocab = ckpt.tokenizer.id_to_token
    cont = np.array([bool(m) and (vocab(int(i)) or "").startswith("##") for i, m in zip(ids, mask)])
    nxt = np.append(cont[1:], False)
    special = np.isin(ids, list(ckpt.special_ids))
    return (mask != 0) & ~special & ~cont & ~nxt


@functools.partial(jax.jit, static_argnames=("model", "num_candidates"))
def _hotflip_step(
    model, enc_state, params, problem, ids, mask, editable, allowed, *, num_candidates
):
    """Objective at ``ids`` [1, T], the top (position, word) pairs by first-order gain and,
    when ``num_candidates > 0``, their true objectives (``-inf`` for invalid pairs)."""
    enc = nnx.merge(model.encoder, enc_state)
    word = enc.embed_tokens(ids)  # [1, T, H]
    obj_fn = lambda w: objective_from_text(model, params, problem, enc.encode_embeds(w, mask))[0]
    obj, g = jax.value_and_grad(obj_fn)(word)
    table = enc.word.embedding[...]  # [V, H]
    gain = g[0] @ table.T - jnp.sum(g[0] * word[0], axis=-1, keepdims=True)  # [T, V]
    vocab = table.shape[0]
    ok = editable[:, None] & allowed[None, :] & (jnp.arange(vocab)[None, :] != ids[0][:, None])
    top, flat = jax.lax.top_k(jnp.where(ok, gain, -jnp.inf).reshape(-1), max(num_candidates, 1))
    pos, words = flat // vocab, flat % vocab
    if num_candidates == 0:
        return obj, pos, words, top, top
    c = num_candidates
    cand = jnp.broadcast_to(ids, (c, ids.shape[1])).at[jnp.arange(c), pos].set(words)
    cand_mask = jnp.broadcast_to(mask, cand.shape)
    cand_obj = objective_from_text(model, params, problem, enc(cand, cand_mask))
    return obj, pos, words, top, jnp.where(jnp.isfinite(top), cand_obj, -jnp.inf)


def substitute_gradient(
    model: TextModel,
    enc_state: Any,
    params: Any,
    problem: TargetProblem,
    ids: Int[np.ndarray, " T"],
    mask: Int[np.ndarray, " T"],
    budget: int,
    *,
    editable: Bool[np.ndarray, " T"],
    allowed: Bool[np.ndarray, " V"],
    rescore: int = 16,
) -> TextEdit:
    """Greedy HotFlip substitution of at most ``budget`` tokens (module docstring).

    Args:
      model: the objective's :class:`TextModel`.
      enc_state: the encoder's ``nnx.State``.
      params: the recommender's params.
      problem: the target problem, from :func:`make_problem`.
      ids: int32 ``[T]`` the target's token ids.
      mask: int32 ``[T]`` the target's attention mask.
      budget: k, the largest number of edits (an int >= 0).
      editable: bool ``[T]`` positions that may change (:func:`editable_positions`).
      allowed: bool ``[V]`` words that may be inserted (:func:`allowed_words`).
      rescore: C; 0 takes the best pair by first-order gain (1 gradient pass per edit),
        which may lower the objective;
        C > 0 scores the top C pairs exactly (1 gradient pass and C + 1 forward passes per
        edit) and stops when none raises the objective.

    Returns:
      A :class:`TextEdit`; ``ids`` differs from the input at most at ``budget`` positions
      (a later edit may change an edited position again).
    """
    budget = _check_budget(budget, "substitute_gradient")
    if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 0:
        raise ValueError(f"substitute_gradient: rescore={rescore!r} must be an int >= 0.")
    cur = np.asarray(ids, np.int32).copy()
    row_mask = jnp.asarray(np.asarray(mask, np.int32)[None])
    args = (jnp.asarray(np.asarray(editable, bool)), jnp.asarray(np.asarray(allowed, bool)))
    steps, passes, spent = [cur.copy()], [Passes()], Passes()
    stopped = False
    for _ in range(budget):
        if not stopped:
            obj, pos, words, gain, cand_obj = jax.device_get(
                _hotflip_step(
                    model,
                    enc_state,
                    params,
                    problem,
                    jnp.asarray(cur[None]),
                    row_mask,
                    *args,
                    num_candidates=rescore,
                )
            )
            spent = Passes(spent.forward + 1 + rescore, spent.backward + 1)
            j = int(np.argmax(cand_obj)) if rescore else 0
            better = cand_obj[j] > obj if rescore else np.isfinite(gain[0])
            if better:
                cur[int(pos[j])] = int(words[j])
            stopped = not better
        steps.append(cur.copy())
        passes.append(spent)
    return TextEdit(cur, steps, passes)


def substitute_random(
    ids: Int[np.ndarray, " T"],
    budget: int,
    *,
    editable: Bool[np.ndarray, " T"],
    allowed: Bool[np.ndarray, " V"],
    key: PRNGKeyArray,
) -> TextEdit:
    """``min(budget, #editable)`` distinct random editable positions, each given a random
    allowed word other than its own. Nested: ``steps[j]`` applies the first ``j`` draws."""
    budget = _check_budget(budget, "substitute_random")
    cur = np.asarray(ids, np.int32).copy()
    places = np.flatnonzero(np.asarray(editable, bool))
    words = np.flatnonzero(np.asarray(allowed, bool))
    if words.size < 2 and budget:
        raise ValueError(f"substitute_random: {words.size} allowed words; need at least 2.")
    k_pos, k_word = jax.random.split(key)
    # a random order of the editable places from fixed-shape draws (no per-text compile)
    order = np.argsort(np.asarray(jax.random.uniform(k_pos, (cur.size,)))[places], kind="stable")
    draws = np.asarray(jax.random.randint(k_word, (budget,), 0, max(words.size - 1, 1)))
    steps = [cur.copy()]
    for j in range(budget):
        if j < places.size:
            p = places[order[j]]
            others = words[words != cur[p]]
            cur[p] = others[draws[j] % others.size]
        steps.append(cur.copy())
    return TextEdit(cur, steps, [Passes()] * (budget + 1))


@functools.partial(
    jax.jit, static_argnames=("model", "kind", "norm", "scope", "budget", "num_steps")
)
def perturb_word_embeddings(
    model: TextModel,
    enc_state: Any,
    params: Any,
    problem: TargetProblem,
    ids: Int[Array, "1 T"],
    mask: Int[Array, "1 T"],
    editable: Bool[Array, " T"],
    eps: Float[Array, ""] | float,
    *,
    kind: str = "pgd",
    norm: str = "l2",
    scope: str = "row",
    budget: str = "absolute",
    num_steps: int = 10,
    step_size: float | None = None,
    key: PRNGKeyArray,
) -> tuple[Float[Array, "1 T H"], Float[Array, "1 H"], Float[Array, ""]]:
    """FGSM or PGD on the word embeddings of the editable tokens of one text.

    The attack (``EMBEDDING_ATTACKS[kind]``) sees ``x = word_emb * editable`` as one example
    ``{"word": [1, T, H]}`` with rows = tokens, so ``scope="row"`` bounds each token,
    ``"example"``/``"batch"`` the whole text, and ``budget="relative"`` measures against
    the editable rows only (:func:`robustjax.attacks.relative_budget`); non-editable rows get
    no perturbation. No random start. ``delta`` is ``stop_gradient``-ed (the library's
    convention). ``eps`` may be traced.

    Returns:
      ``(delta [1, T, H], the perturbed encoder output [1, H], its objective [])``.
    """
    if kind not in CONTINUOUS_KINDS:
        raise ValueError(
            f"perturb_word_embeddings: kind={kind!r}; expected one of {CONTINUOUS_KINDS}."
        )
    enc = nnx.merge(model.encoder, enc_state)
    word = enc.embed_tokens(ids)
    m = editable.astype(word.dtype)[None, :, None]
    x = {"word": word * m}

    def run(z):
        return enc.encode_embeds(word + m * (z - x["word"]), mask)

    loss_fn = lambda z: objective_from_text(model, params, problem, run(z["word"]))
    attack = EMBEDDING_ATTACKS[kind].fn
    if budget == "relative":
        attack = relative_budget(attack, norm=norm, scope=scope)
    d = attack(
        loss_fn,
        x,
        key=key,
        eps=eps,
        step_size=step_size,
        num_steps=num_steps,
        random_start=False,
        norm=norm,
        scope=scope,
        targets=None,
    )
    delta = d["word"] * m
    emb = run(x["word"] + delta)
    return delta, emb, objective_from_text(model, params, problem, emb)[0]


def gradient_entry(model, enc_state, params, problem, ids, mask, budget, *, rescore=16, **kw):
    """``TEXT_ATTACKS["text_substitute_gradient"]``: :func:`substitute_gradient`."""
    kw.pop("key", None)
    return substitute_gradient(
        model, enc_state, params, problem, ids, mask, budget, rescore=rescore, **kw
    )


def random_entry(model, enc_state, params, problem, ids, mask, budget, *, key, rescore=0, **kw):
    """``TEXT_ATTACKS["text_substitute_random"]``: :func:`substitute_random` (the model is
    not read)."""
    del model, enc_state, params, problem, mask, rescore
    return substitute_random(ids, budget, key=key, **kw)


__all__ = [
    "CONTINUOUS_KINDS",
    "OBJECTIVES",
    "Passes",
    "TargetProblem",
    "TextEdit",
    "TextModel",
    "allowed_words",
    "check_objective",
    "editable_positions",
    "gradient_entry",
    "make_problem",
    "objective_from_text",
    "perturb_word_embeddings",
    "random_entry",
    "substitute_gradient",
    "substitute_random",
    "text_objective",
]
