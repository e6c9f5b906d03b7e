"""Text attacks (robustjax.text.attacks) on a tiny random checkpoint and a tiny text-MF:
edit budgets, allowed words and positions, monotone greedy re-scoring, the continuous ball,
the objective and the target rank metrics against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

import itertools

from flax import nnx

from robustjax.attacks import norms
from robustjax.attacks.registry import TEXT_ATTACKS, text_kinds
from robustjax.eval.text_sweep import TextSweepConfig, default_targets, target_ranks
from robustjax.models.text_tower import TextMF, text_mf_fns
from robustjax.poison.metrics import target_metrics
from robustjax.text import encoder_from_checkpoint, load_checkpoint, tokenize, write_tiny_checkpoint
from robustjax.text.attacks import (
    TextModel,
    allowed_words,
    editable_positions,
    make_problem,
    objective_from_text,
    perturb_word_embeddings,
    substitute_gradient,
    substitute_random,
    text_objective,
)

TEXTS = [
    "toy story (1995) animation children's comedy",
    "star wars (1977) action adventure romance sci fi war",
    "the dark night of the soul drama",
    "a comedy of errors comedy romance",
    "alien (1979) horror sci fi thriller",
    "western town musical",
    "mystery of the unknown thriller",
    "documentary about war",
]
NUM_USERS, MAX_LEN, TARGET = 12, 16, 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = write_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny") / "ckpt"), seed=0)
    ckpt = load_checkpoint(folder)
    enc = encoder_from_checkpoint(ckpt)
    graphdef, enc_state = nnx.split(enc)
    tok = tokenize(ckpt, TEXTS, max_len=MAX_LEN)
    feats = enc(jnp.asarray(tok.ids), jnp.asarray(tok.mask))
    fns, params = text_mf_fns(
        TextMF(NUM_USERS, feats, 8, rngs=nnx.Rngs(0)), encoder=folder, max_len=MAX_LEN
    )
    users = np.arange(NUM_USERS, dtype=np.int32)
    scores = fns.score_all(params, jnp.asarray(users))
    exclude = np.zeros((NUM_USERS, len(TEXTS)), bool)
    exclude[np.arange(NUM_USERS), (np.arange(NUM_USERS) + 3) % len(TEXTS)] = True
    user_table = fns.get_tables(params)["user"]
    problem = make_problem(user_table, scores, jnp.asarray(exclude), TARGET, k=3)
    model = TextModel(graphdef, fns.text.item_from_text, fns.score, "logsigmoid")
    ids, mask = tok.ids[TARGET], tok.mask[TARGET]
    return {
        "ckpt": ckpt,
        "enc_state": enc_state,
        "fns": fns,
        "params": params,
        "scores": np.asarray(scores),
        "exclude": exclude,
        "problem": problem,
        "model": model,
        "ids": ids,
        "mask": mask,
        "editable": editable_positions(ckpt, ids, mask),
        "allowed": allowed_words(ckpt),
    }


def _objective(s, ids):
    obj, _ = text_objective(
        s["model"], s["enc_state"], s["params"], s["problem"],
        jnp.asarray(np.asarray(ids)[None]), jnp.asarray(s["mask"][None]),
    )  # fmt: skip
    return float(obj[0])


def _check_edit(s, ids, budget):
    changed = np.flatnonzero(ids != s["ids"])
    assert changed.size <= budget
    assert s["editable"][changed].all()  # real single-piece words only
    assert s["allowed"][ids[changed]].all()
    assert not np.isin(ids[changed], s["ckpt"].special_ids).any()
    vocab = s["ckpt"].tokenizer.id_to_token
    assert not any(vocab(int(i)).startswith(("##", "[")) for i in ids[changed])


def test_allowed_and_editable(setup):
    s = setup
    assert not s["allowed"][list(s["ckpt"].special_ids)].any()
    assert s["allowed"].sum() > 20
    real = np.flatnonzero(s["mask"])
    assert not s["editable"][real[0]] and not s["editable"][real[-1]]  # [CLS], [SEP]
    assert not s["editable"][s["mask"] == 0].any()
    assert s["editable"].sum() >= 3


@pytest.mark.parametrize("budget", [0, 1, 3])
def test_gradient_substitution_budget_and_monotone(setup, budget):
    s = setup
    edit = substitute_gradient(
        s["model"], s["enc_state"], s["params"], s["problem"], s["ids"], s["mask"], budget,
        editable=s["editable"], allowed=s["allowed"], rescore=8,
    )  # fmt: skip
    _check_edit(s, edit.ids, budget)
    assert len(edit.steps) == budget + 1
    np.testing.assert_array_equal(edit.steps[0], s["ids"])
    objs = [_objective(s, ids) for ids in edit.steps]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(objs))  # re-scoring never lowers it
    if budget:
        assert objs[-1] > objs[0]  # a random tiny model always has an improving word
        assert edit.passes[1].forward == 9 and edit.passes[1].backward == 1


def test_gradient_substitution_first_order(setup):
    s = setup
    edit = substitute_gradient(
        s["model"], s["enc_state"], s["params"], s["problem"], s["ids"], s["mask"], 2,
        editable=s["editable"], allowed=s["allowed"], rescore=0,
    )  # fmt: skip
    _check_edit(s, edit.ids, 2)
    assert edit.passes[2] == (2, 2)


@pytest.mark.parametrize("budget", [0, 2, 50])
def test_random_substitution(setup, budget):
    s = setup
    edit = substitute_random(
        s["ids"], budget, editable=s["editable"], allowed=s["allowed"], key=jax.random.key(1)
    )
    _check_edit(s, edit.ids, budget)
    assert np.sum(edit.ids != s["ids"]) == min(budget, s["editable"].sum())
    for j, ids in enumerate(edit.steps):  # nested: budget j changes exactly j tokens
        assert np.sum(ids != s["ids"]) == min(j, s["editable"].sum())


@pytest.mark.parametrize("budget", [-1, 1.5, True])
def test_bad_budget(setup, budget):
    s = setup
    with pytest.raises(ValueError, match="budget"):
        substitute_random(
            s["ids"], budget, editable=s["editable"], allowed=s["allowed"], key=jax.random.key(0)
        )


@pytest.mark.parametrize(
    "kind,norm,scope,budget",
    [("pgd", "l2", "row", "absolute"), ("fgsm", "linf", "example", "relative"),
     ("pgd", "l2", "example", "relative")],
)  # fmt: skip
def test_continuous_in_ball(setup, kind, norm, scope, budget):
    s = setup
    eps = 0.3
    args = (
        s["model"], s["enc_state"], s["params"], s["problem"], jnp.asarray(s["ids"][None]),
        jnp.asarray(s["mask"][None]), jnp.asarray(s["editable"]),
    )  # fmt: skip
    kw = {
        "kind": kind,
        "norm": norm,
        "scope": scope,
        "budget": budget,
        "num_steps": 3,
        "key": jax.random.key(0),
    }
    delta, _, obj = perturb_word_embeddings(*args, jnp.float32(eps), **kw)
    assert delta.shape == (1, MAX_LEN, s["ckpt"].config.hidden)
    assert float(jnp.max(jnp.abs(delta[0, ~s["editable"]]))) == 0.0
    size = norms({"d": delta}, norm=norm, scope=scope)[0]
    radius = eps
    if budget == "relative":
        enc = nnx.merge(s["model"].encoder, s["enc_state"])
        word = enc.embed_tokens(jnp.asarray(s["ids"][None])) * s["editable"][None, :, None]
        radius = eps * norms({"w": word}, norm=norm, scope=scope)[0]
    assert bool(jnp.all(size <= radius * (1 + 1e-4) + 1e-7))
    assert float(obj) >= -1e3  # finite
    _, _, small = perturb_word_embeddings(*args, jnp.float32(1e-3), **kw)
    assert float(small) >= _objective(s, s["ids"]) - 1e-6  # first-order ascent
    zero, _, obj0 = perturb_word_embeddings(*args, jnp.float32(0.0), **kw)
    assert float(jnp.max(jnp.abs(zero))) == 0.0
    np.testing.assert_allclose(float(obj0), _objective(s, s["ids"]), rtol=1e-5, atol=1e-6)


def test_objective_by_hand(setup):
    s = setup
    scores, excl = s["scores"], s["exclude"].copy()
    excl[:, TARGET] = True
    thr = np.sort(np.where(excl, -np.inf, scores), axis=1)[:, -3]
    std = np.array([np.std(r[~e]) for r, e in zip(scores, excl)])
    np.testing.assert_allclose(np.asarray(s["problem"].thr), thr, rtol=1e-5)
    np.testing.assert_allclose(float(s["problem"].tau), std.mean(), rtol=1e-4)
    enc = nnx.merge(s["model"].encoder, s["enc_state"])
    emb = enc(jnp.asarray(s["ids"][None]), jnp.asarray(s["mask"][None]))
    z = (scores[:, TARGET] - thr) / std.mean()
    want = np.mean(np.log(1 / (1 + np.exp(-z))))
    got = objective_from_text(s["model"], s["params"], s["problem"], emb)
    np.testing.assert_allclose(float(got[0]), want, rtol=1e-4, atol=1e-5)


def test_objective_weights_attack_users(setup):
    s = setup
    valid = np.arange(NUM_USERS) % 3 != 0
    scores, excl = s["scores"], s["exclude"].copy()
    p = make_problem(
        s["problem"].users, scores, jnp.asarray(excl), TARGET, k=3, valid=jnp.asarray(valid)
    )
    excl[:, TARGET] = True
    thr = np.sort(np.where(excl, -np.inf, scores), axis=1)[:, -3]
    tau = np.mean([np.std(r[~e]) for r, e, v in zip(scores, excl, valid) if v])
    z = (scores[:, TARGET] - thr) / tau
    want = np.mean(np.log(1 / (1 + np.exp(-z)))[valid])
    enc = nnx.merge(s["model"].encoder, s["enc_state"])
    emb = enc(jnp.asarray(s["ids"][None]), jnp.asarray(s["mask"][None]))
    got = objective_from_text(s["model"], s["params"], p, emb)
    np.testing.assert_allclose(float(got[0]), want, rtol=1e-4, atol=1e-5)


def test_target_ranks_by_hand():
    # 3 users x 4 items, dot-product scores; ties broken by item id
    user = jnp.asarray([[1.0], [2.0], [-1.0]])
    item = jnp.asarray([[1.0], [3.0], [1.0], [0.5]])
    score_all = lambda p, u: p[0][u] @ p[1].T
    exclude = np.zeros((3, 4), bool)
    exclude[0, 1] = True  # user 0 trained on item 1: not ranked
    ranks = target_ranks(score_all, (user, item), jnp.arange(3), exclude, jnp.int32(2))
    # user 0: scores [1, -, 1, .5]: item 0 ties and has a lower id -> rank 1
    # user 1: [2, 6, 2, 1]: item 1 above, item 0 ties lower -> 2; user 2: [-1,-3,-1,-.5] -> 2
    np.testing.assert_array_equal(np.asarray(ranks), [1, 2, 2])
    # the poisoning metrics' definition: HR@2 = 1/3 (only user 0 has rank < 2)
    csr = (np.array([0, 1, 1, 1]), np.array([1]))
    got = target_metrics(
        score_all, (user, item), targets=[2], users=np.arange(3), exclude_csr=csr, num_items=4, k=2
    )
    assert got["hr@2"] == pytest.approx(1 / 3)


def test_registry_and_config():
    assert set(text_kinds()) == {
        "text_substitute_gradient", "text_substitute_random", "text_fgsm", "text_pgd"
    }  # fmt: skip
    assert TEXT_ATTACKS["text_substitute_gradient"].discrete
    assert not TEXT_ATTACKS["text_pgd"].discrete
    with pytest.raises(ValueError, match="integers"):
        TextSweepConfig(kind="text_substitute_random", levels=(0.0, 0.5))
    TextSweepConfig(kind="text_pgd", levels=(0.0, 0.5))
    assert default_targets(100) == default_targets(100) and len(default_targets(100)) == 5
