"""Leave-one-out sequences for sequential recommendation, their negatives and length buckets.

Protocol (Kang & McAuley, ICDM 2018): per user, the last item is the test target, the
second-to-last the validation target, the rest the training sequence. Each target is ranked
against 100 negatives sampled uniformly (seeded, fixed) from the items the user never
interacted with.

Training negatives (:func:`sample_unseen`): for every position, one item drawn uniformly
from ``1..I`` minus the user's *training* items (as the official code), by rejection sampling
on device against a dense ``[U, I + 1]`` boolean "seen" matrix: ``_NEG_TRIES`` uniform
draws, keeping the first unseen one (the last draw if all were seen; with at most 62% of
ML-1M seen by any user this happens with probability < 0.62**8 = 2% for the heaviest user
and ~0 for a typical one).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from robustjax.data.table import InteractionTable

_NEG_TRIES = 8
NUM_EVAL_NEGATIVES = 100


@dataclasses.dataclass(frozen=True)
class SequenceData:
    """Left-padded item sequences (items ``1..I``, 0 = padding) for leave-one-out.

    Attributes:
      train: int32 [U, L + 1], the last ``L + 1`` training items (inputs ``[:, :-1]``,
        next-item positives ``[:, 1:]``).
      valid_input: int32 [U, L], last L training items (input for the valid target).
      test_input: int32 [U, L], last L items of train + valid (input for the test target).
      valid_target, test_target: int32 [U].
      seen_train: bool [U, I + 1], training items of each user (for negative sampling).
      valid_cands, test_cands: int32 [U, 1 + 100]; column 0 is the target, the rest are
        negatives never interacted with by the user.
      num_items: I.
    """

    train: jax.Array
    valid_input: jax.Array
    test_input: jax.Array
    valid_target: jax.Array
    test_target: jax.Array
    seen_train: jax.Array
    valid_cands: jax.Array
    test_cands: jax.Array
    num_items: int

    @property
    def num_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def max_len(self) -> int:
        return int(self.valid_input.shape[1])


def _left_pad(seqs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length), np.int32)
    for u, s in enumerate(seqs):
        s = s[-length:]
        if len(s):
            out[u, length - len(s) :] = s
    return out


def make_sequence_data(
    table: InteractionTable, *, max_len: int, seed: int = 0, num_negatives: int = NUM_EVAL_NEGATIVES
) -> SequenceData:
    """Builds leave-one-out sequences from a table whose rows are in time order per user.

    Users with fewer than 3 interactions are dropped (they have no training item).
    Evaluation negatives are drawn once with ``numpy.random.default_rng(seed)``.
    """
    if max_len < 1:
        raise ValueError(f"make_sequence_data: max_len must be >= 1, got {max_len}.")
    num_items = int(table.num_items)
    order = np.argsort(table.user, kind="stable")  # keeps time order within users
    users, items = table.user[order], table.item[order].astype(np.int32) + 1
    bounds = np.flatnonzero(np.diff(users)) + 1
    seqs = [s for s in np.split(items, bounds) if len(s) >= 3]
    if not seqs:
        raise ValueError("make_sequence_data: no user has >= 3 interactions.")
    if num_negatives + 1 > num_items:
        raise ValueError(
            f"make_sequence_data: num_negatives={num_negatives} needs more than "
            f"{num_negatives} items, the table has {num_items}; lower the sampled "
            f"candidates (runs: --set eval.sampled_negatives={num_items - 1} or less)."
        )
    num_users = len(seqs)
    seen_all = np.zeros((num_users, num_items + 1), bool)
    seen_train = np.zeros((num_users, num_items + 1), bool)
    rng = np.random.default_rng(seed)
    cands = {
        "valid": np.zeros((num_users, 1 + num_negatives), np.int32),
        "test": np.zeros((num_users, 1 + num_negatives), np.int32),
    }
    for u, s in enumerate(seqs):
        seen_all[u, s] = True
        seen_train[u, s[:-2]] = True
        pool = np.flatnonzero(~seen_all[u, 1:]) + 1
        if len(pool) < num_negatives:
            raise ValueError(
                f"make_sequence_data: user {u} leaves only {len(pool)} unseen "
                f"items, fewer than num_negatives={num_negatives}."
            )
        for split, target in (("valid", s[-2]), ("test", s[-1])):
            cands[split][u, 0] = target
            # uniform with replacement, as the official code's random draws
            cands[split][u, 1:] = pool[rng.integers(0, len(pool), num_negatives)]
    return SequenceData(
        train=jnp.asarray(_left_pad([s[:-2] for s in seqs], max_len + 1)),
        valid_input=jnp.asarray(_left_pad([s[:-2] for s in seqs], max_len)),
        test_input=jnp.asarray(_left_pad([s[:-1] for s in seqs], max_len)),
        valid_target=jnp.asarray(np.array([s[-2] for s in seqs], np.int32)),
        test_target=jnp.asarray(np.array([s[-1] for s in seqs], np.int32)),
        seen_train=jnp.asarray(seen_train),
        valid_cands=jnp.asarray(cands["valid"]),
        test_cands=jnp.asarray(cands["test"]),
        num_items=num_items,
    )


def sample_unseen(
    seen: jax.Array, shape: tuple[int, int], num_items: int, *, key: PRNGKeyArray
) -> jax.Array:
    """Items in ``1..I`` not marked in ``seen`` [B, I + 1], by rejection; int32 [B, L]."""
    draws = jax.random.randint(key, (_NEG_TRIES, *shape), 1, num_items + 1, jnp.int32)
    hit = jax.vmap(lambda d: jnp.take_along_axis(seen, d, axis=1))(draws)  # [T, B, L]
    first = jnp.argmax(~hit, axis=0)  # first unseen draw (0 if none)
    first = jnp.where(jnp.any(~hit, axis=0), first, _NEG_TRIES - 1)
    return jnp.take_along_axis(draws, first[None], axis=0)[0]


def length_buckets(train: np.ndarray, num_buckets: int) -> np.ndarray:
    """Static bucket lengths for ``train`` [U, L + 1] (left-padded): ``num_buckets`` evenly
    spaced lengths ``ceil(L * k / n)``, the last one ``L``. Returns int [n] (deduplicated)."""
    if num_buckets < 1:
        raise ValueError(f"length_buckets: num_buckets must be >= 1, got {num_buckets}.")
    max_len = np.asarray(train).shape[1] - 1
    bounds = [-(-max_len * k // num_buckets) for k in range(1, num_buckets + 1)]
    return np.unique(np.asarray(bounds, np.int64))


def history_lengths(train: np.ndarray) -> np.ndarray:
    """Input history length of each user: the nonzero entries of ``train[u, :-1]``."""
    return np.count_nonzero(np.asarray(train)[:, :-1], axis=1)


def bucketed_batches(
    lengths: np.ndarray, perm: np.ndarray, batch_size: int, bounds: np.ndarray
) -> list[tuple[int, np.ndarray]]:
    """Splits one epoch's user order ``perm`` into full batches of users of similar length.

    A user goes to the shortest bucket ``length`` that holds its input history
    (``lengths``, from :func:`history_lengths`), keeping the order of ``perm`` within a
    bucket. Users left
    over after a bucket's full batches move up to the next (longer) bucket, so only the
    last bucket drops a remainder (``< batch_size`` users, as the unbucketed epoch does).
    The batch counts depend only on the lengths, never on ``perm``: every epoch reuses the
    same compiled functions. With one bucket this is ``perm[:NB * B].reshape(NB, B)``.

    Returns ``[(length, int32 [NB, B]), ...]`` for the non-empty buckets, shortest first.
    """
    which = np.searchsorted(bounds, np.asarray(lengths)[perm])  # bucket of each user
    out, carry = [], np.zeros(0, np.int64)
    for b, length in enumerate(bounds):
        users = np.concatenate([carry, perm[which == b]])
        nb = len(users) // batch_size
        if nb:
            out.append(
                (int(length), users[: nb * batch_size].reshape(nb, batch_size).astype(np.int32))
            )
        carry = users[nb * batch_size :]
    return out
