"""Brute-force numpy reference for robustjax.eval.rank_metrics (loops, float64, no jax)."""

import math

import numpy as np


def ref_rank_metrics(scores, target, exclude, ks):
    """Per-user metrics by explicit loops over a stable descending sort of the candidates."""
    scores = np.asarray(scores, np.float64)
    target, exclude = np.asarray(target, bool), np.asarray(exclude, bool)
    num_users, num_items = scores.shape
    names = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg", "hr", "precision", "mrr")]
    out = {name: np.zeros(num_users) for name in [*names, "auc", "valid"]}
    for u in range(num_users):
        s = np.where(np.isnan(scores[u]), -np.inf, scores[u])
        cand = [i for i in range(num_items) if not exclude[u, i]]
        order = sorted(cand, key=lambda i: (-s[i], i))  # stable: lower id first on ties
        targets = set(np.flatnonzero(target[u]).tolist())
        n = len(targets)
        if n == 0:
            continue
        out["valid"][u] = 1.0
        hits = [i in targets and s[i] > -np.inf for i in order]
        for k in ks:
            hk = sum(hits[:k])
            dcg = sum(1.0 / math.log2(r + 2) for r in range(k) if r < len(hits) and hits[r])
            idcg = sum(1.0 / math.log2(r + 2) for r in range(min(n, k)))
            first = next((r for r in range(min(k, len(hits))) if hits[r]), None)
            out[f"recall@{k}"][u] = hk / n
            out[f"ndcg@{k}"][u] = dcg / idcg
            out[f"hr@{k}"][u] = float(hk > 0)
            out[f"precision@{k}"][u] = hk / k
            out[f"mrr@{k}"][u] = 0.0 if first is None else 1.0 / (first + 1)
        negatives = [j for j in cand if j not in targets]
        won = 0.0
        for t in targets:
            if exclude[u, t]:
                continue  # an excluded target loses every pair
            for j in negatives:
                won += 1.0 if s[t] > s[j] else 0.5 if s[t] == s[j] else 0.0
        out["auc"][u] = won / (n * len(negatives)) if negatives else 0.0
    return out
