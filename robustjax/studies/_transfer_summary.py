"""The transfer study over repetitions: means with 95% intervals, paired differences, tables.

Each repetition gives one plain-number result per part (``run_fake_profiles``,
``run_histories``); here every figure becomes a :func:`robustjax.report.intervals.mean_ci`
entry over the repetitions, and each transferred attack is compared with its baseline on
the same repetition (:func:`robustjax.report.intervals.paired_diff`).
"""

from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff

NOT_A_RANKING = (
    "Cells: mean [95% CI] over the n repetitions (Student-t). A difference whose interval "
    "includes 0 is not a ranking."
)


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _aggregate(entries: list[dict], skip=()) -> dict:
    """``{key: mean_ci}`` of the numeric keys of ``entries`` (one dict per repetition);
    other keys keep their per-repetition values as a list."""
    out = {}
    for key, first in entries[0].items():
        if key in skip:
            continue
        values = [e[key] for e in entries]
        out[key] = mean_ci(values) if _is_number(first) else values
    return out


def summarise_fake(reps: list[dict], reference: str) -> dict:
    """The fake-profile part over repetitions (``reps``: one ``run_fake_profiles`` result
    each, same rows and victims). ``paired`` compares every transferred row with the
    heuristic ``reference`` row on the same repetition and victim (``reference`` ``"none"``:
    with the clean victim, i.e. after − before)."""
    first, k = reps[0], reps[0]["k"]
    label = ("surrogate", "victim", "kind")
    by_cell = [{(c["surrogate"], c["victim"]): c for c in r["cells"]} for r in reps]
    cells = []
    for c0 in first["cells"]:
        at = (c0["surrogate"], c0["victim"])
        cells.append(
            {**{f: c0[f] for f in label}, **_aggregate([b[at] for b in by_cell], skip=label)}
        )
    figures = (f"target_hr@{k}", "test_ndcg@20")
    baseline = reference if reference != "none" else "clean victim"
    paired = []
    for c0 in first["cells"]:
        row, victim = c0["surrogate"], c0["victim"]
        if row == reference:
            continue
        entry = {"surrogate": row, "victim": victim}
        for fig in figures:
            mine = [b[row, victim][f"{fig}/delta"] for b in by_cell]
            if reference == "none":
                base = [0.0] * len(mine)  # the delta is already after − before
            else:
                base = [b[reference, victim][f"{fig}/delta"] for b in by_cell]
            entry[f"{fig}/delta"] = paired_diff(mine, base)
        paired.append(entry)
    return {
        "n": len(reps),
        "data": first["data"],
        "num_fake": first["num_fake"],
        "k": k,
        "rows": first["rows"],
        "victims": first["victims"],
        "targets": [r["targets"] for r in reps],
        "target_users": mean_ci([r["target_users"] for r in reps]),
        "cells": cells,
        "clean": {v: _aggregate([r["clean"][v] for r in reps]) for v in first["victims"]},
        "paired": {"baseline": baseline, "cells": paired},
        "training": first["training"],
        "seconds": sum(r["seconds"] for r in reps),
    }


def summarise_histories(reps: list[dict]) -> dict:
    """The history-edit part over repetitions (``reps``: one ``run_histories`` result
    each). ``paired``: every gradient row's HR@10/NDCG@10 drop minus the random
    substitution row's on the same repetition and model."""
    first = reps[0]
    models = first["models"]
    rows = []
    for j, r0 in enumerate(first["rows"]):
        reps_rows = [r["rows"][j] for r in reps]
        if any(rr["surrogate"] != r0["surrogate"] for rr in reps_rows):
            raise ValueError("summarise_histories: repetitions list different rows.")
        rows.append(
            {
                "attack": r0["attack"],
                "surrogate": r0["surrogate"],
                "histories_sha1": [rr["histories_sha1"] for rr in reps_rows],
                "changed": mean_ci([rr["changed"] for rr in reps_rows]),
                "craft_seconds": mean_ci([rr["craft_seconds"] for rr in reps_rows]),
                "cells": {m: _aggregate([rr["cells"][m] for rr in reps_rows]) for m in models},
            }
        )
    random = next(i for i, r0 in enumerate(first["rows"]) if r0["attack"] == "random")
    paired = []
    for j, r0 in enumerate(first["rows"]):
        if r0["attack"] == "random":
            continue
        cells = {}
        for m in models:
            cells[m] = {
                fig: paired_diff(
                    [r["rows"][j]["cells"][m][fig] for r in reps],
                    [r["rows"][random]["cells"][m][fig] for r in reps],
                )
                for fig in ("hr@10/drop", "ndcg@10/drop")
            }
        paired.append({"surrogate": r0["surrogate"], "cells": cells})
    return {
        "n": len(reps),
        **{f: first[f] for f in ("source", "num_users", "num_items", "max_len", "budget")},
        "models": models,
        "surrogates": first["surrogates"],
        "model_seeds": [r["model_seeds"] for r in reps],
        "attack_seeds": [r["attack_seed"] for r in reps],
        "training": {m: _aggregate([r["training"][m] for r in reps]) for m in models},
        "clean": {m: _aggregate([r["clean"][m] for r in reps]) for m in models},
        "rows": rows,
        "paired": {"baseline": "random", "rows": paired},
        "seconds": sum(r["seconds"] for r in reps),
    }


def _star(entry: dict) -> str:
    return fmt_ci(entry, signed=True) + (" *" if excludes_zero(entry) else "")


def _label(row: str, reference: str) -> str:
    if row == reference:
        return f"{row} (heuristic reference)"
    return row if row == "mf-unrolled" else f"{row} surrogate"


def _delta_rows(cells: list, rows, victims: list, k: int, reference: str, fmt) -> list[str]:
    """One table line per surrogate in ``rows``: per victim, the cell's target HR@k change
    and its test NDCG@20 change, each formatted by ``fmt``."""
    at = {(c["surrogate"], c["victim"]): c for c in cells}
    lines = []
    for r in rows:
        deltas = [
            f"{fmt(at[r, v][f'target_hr@{k}/delta'])} "
            f"(NDCG@20 {fmt(at[r, v]['test_ndcg@20/delta'])})"
            for v in victims
        ]
        n_row = at[r, victims[0]][f"target_hr@{k}/delta"]["n"]
        lines.append(f"| {_label(r, reference)} | {n_row} | " + " | ".join(deltas) + " |")
    return lines


def fake_markdown(cfg: dict, fake: dict, seeds: list[dict]) -> list[str]:
    """The fake-profile matrix (mean [95% CI] per cell) and its paired matrix."""
    k, n, victims = fake["k"], fake["n"], fake["victims"]
    head = "| surrogate → victim | n | " + " | ".join(victims) + " |"
    rule = "|---|---|" + "---|" * len(victims)
    lines = [
        (
            f"### Fake-profile transfer, {fake['data']['name']}: {fake['num_fake']} fake users "
            f"({cfg['fake_fraction']:.1%}), {len(fake['targets'][0])} {cfg['target_band']} "
            f"targets (drawn anew per repetition), filler size {cfg['filler_size']}, "
            f"{fmt_ci(fake['target_users'], 1)} unexposed users"
        ),
        "",
        (
            f"Cell: target HR@{k} after − before, then test NDCG@20 after − before; n = {n} "
            f"repetitions (victim seeds {', '.join(str(s['victim_seed']) for s in seeds)}; "
            f"surrogate seeds {', '.join(str(s['surrogate_seed']) for s in seeds)}). "
            + NOT_A_RANKING
        ),
        "",
        head,
        rule,
    ]
    signed = lambda entry: fmt_ci(entry, signed=True)
    lines += _delta_rows(fake["cells"], fake["rows"], victims, k, cfg["reference"], signed)
    clean = " | ".join(
        f"{fmt_ci(fake['clean'][v][f'target_hr@{k}'])} / {fmt_ci(fake['clean'][v]['test_ndcg@20'])}"
        for v in victims
    )
    lines += [f"| clean victim: target HR@{k} / test NDCG@20 | {n} | {clean} |", ""]
    paired = fake["paired"]
    if paired["cells"]:
        lines += [
            (
                f"Paired differences against {paired['baseline']} on the same repetition and "
                f"victim (target HR@{k} gain, then NDCG@20 change; * = 95% CI excludes 0):"
            ),
            "",
            head,
            rule,
        ]
        rows = dict.fromkeys(c["surrogate"] for c in paired["cells"])
        lines += _delta_rows(paired["cells"], rows, victims, k, cfg["reference"], _star)
        lines.append("")
    return lines


def history_markdown(hist: dict) -> list[str]:
    """The history-edit matrix (mean [95% CI] per cell) and its paired matrix."""
    models, n = hist["models"], hist["n"]
    head = "| edits crafted on → evaluated on | n | " + " | ".join(models) + " |"
    rule = "|---|---|" + "---|" * len(models)
    lines = [
        (
            f"### History-edit transfer, {hist['source']}: {hist['num_users']} users, "
            f"{hist['num_items']} items, max_len {hist['max_len']}, {hist['budget']} substituted "
            "items per test history"
        ),
        "",
        (
            "Cell: HR@10 clean − edited (sampled protocol, 100 negatives); the diagonal "
            f"(surrogate = model) is white-box; n = {n} repetitions, each training every "
            "model with its own seed (model seeds per repetition: "
            + "; ".join(", ".join(f"{m} {s}" for m, s in ms.items()) for ms in hist["model_seeds"])
            + "). "
            + NOT_A_RANKING
        ),
        "",
        head,
        rule,
    ]
    for row in hist["rows"]:
        name = (
            "random substitution (baseline)"
            if row["attack"] == "random"
            else f"{row['surrogate']} (gradient)"
        )
        cells = [fmt_ci(row["cells"][m]["hr@10/drop"], signed=True) for m in models]
        lines.append(f"| {name} | {row['changed']['n']} | " + " | ".join(cells) + " |")
    lines += [
        f"| clean HR@10 | {n} | "
        + " | ".join(fmt_ci(hist["clean"][m]["hr@10"]) for m in models)
        + " |",
        "",
    ]
    if hist["paired"]["rows"]:
        lines += [
            (
                "Paired differences: HR@10 drop of the gradient edits minus that of random "
                "substitution on the same repetition and model (* = 95% CI excludes 0):"
            ),
            "",
            head,
            rule,
        ]
        for row in hist["paired"]["rows"]:
            cells = [_star(row["cells"][m]["hr@10/drop"]) for m in models]
            n_row = row["cells"][models[0]]["hr@10/drop"]["n"]
            lines.append(
                f"| {row['surrogate']} (gradient) − random | {n_row} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    return lines
