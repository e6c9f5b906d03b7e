"""Every number the guide quotes is checked against the committed study output it comes from.

The evidence is committed under ``docs/evidence/<study>/`` (``study.json`` as the study wrote
it, its ``study.md`` and the plots the pages show); ``STUDIES`` below names each study's
command. The pages (``docs/guide/*.md``, ``docs/reproducibility.md``) quote numbers in two
forms:

- **inline**: ```0.3416 [0.3395, 0.3437]`<!-- evidence: apr/study.json
  methods.apr.clean/ndcg@20 -->``. The key path is split on ``.`` (a key that itself holds a
  dot, such as ``drop@0.5/relative``, is matched whole). The value there is a number, a list
  (an interval) or a ``{"mean", "ci95"}`` entry, quoted as its mean alone or as
  ``mean [lo, hi]``. Every quoted number must equal the JSON value rounded to the quoted
  number of decimals; a ``%`` (or "points", for a difference of two percentages) in the
  quoted text means the JSON value times 100.
- **generated blocks**: ``<!-- begin: NAME -->`` ... ``<!-- end: NAME -->`` hold exactly
  what ``BLOCKS[NAME]()`` writes from the JSON (tables with their source line: command,
  evidence file, seeds and n; figures with the same caption).

A measured-looking number (four or more decimals, or a percentage with decimals) outside
both forms and outside code is an error, so a number cannot be quoted unchecked by accident;
an image outside a generated block (which would lack its source line) is an error too.

After new evidence is committed, write the blocks again with::

    .venv/bin/python tests/docs/test_docs_numbers.py
"""

import functools
import glob
import itertools
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
EVIDENCE = os.path.join(DOCS, "evidence")
REPRODUCE = os.path.join(ROOT, "benchmarks", "reproduce_docs.sh")

# study folder under docs/evidence -> the command that wrote it (run from the project root,
# beside ../shared/data) and the run folder it writes
STUDIES = {
    "apr": (
        "robustjax study apr --data ../shared/data/ml-100k-split --seeds 5 "
        "--out runs/evidence/study_apr"
    ),
    "seq_robustness": (
        "robustjax study seq-robustness --data ../shared/data/ml-100k --seeds 5 "
        "--out runs/evidence/study_seq"
    ),
    "natural_noise": (
        "robustjax study natural-noise --data ../shared/data/ml-100k-split "
        "--out runs/evidence/noise --seeds 5"
    ),
    "irgan": "robustjax study irgan --data ../shared/data/ml-100k-split --out runs/evidence/irgan",
    "transfer": (
        "robustjax study transfer --data ../shared/data/ml-100k-split "
        "--out runs/evidence/transfer --seeds 5"
    ),
    "poisoning": (
        "robustjax study poisoning --data ../shared/data/ml-100k-split --out runs/evidence/poison"
    ),
    "attack_cost": "python -m benchmarks.attack_cost",
    "text_towers": (
        "robustjax study text-towers --data ../shared/data/ml-100k --seeds 3 "
        "--set methods=mf,text-mf,text-mf-adv --out runs/study_text_adv"
    ),
}

INLINE = re.compile(r"`([^`\n]+)`<!-- evidence: (\S+) (\S+) -->")
BLOCK = re.compile(r"<!-- begin: ([\w-]+) -->\n(.*?)<!-- end: \1 -->", re.DOTALL)
NUMBER = re.compile(r"[+\-\u2212]?\d+(?:\.\d+)?")
# measured-looking numbers: four or more decimals, or a percentage with decimals
UNCHECKED = re.compile(r"(?<![\w.])[+\-\u2212]?\d+\.(?:\d{4,}|\d+ ?%)")
CODE = re.compile(r"^```.*?^```[ \t]*$|`[^`\n]*`", re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def pages() -> list[str]:
    """The pages whose numbers are checked."""
    return sorted(glob.glob(os.path.join(DOCS, "guide", "*.md"))) + [
        os.path.join(DOCS, "reproducibility.md")
    ]


@functools.cache
def load(rel: str) -> dict:
    """A committed evidence file, by its path under ``docs/evidence``."""
    with open(os.path.join(EVIDENCE, rel)) as f:
        return json.load(f)


def resolve(data, path: str):
    """The value at a dotted key path; a key containing dots is matched whole (longest
    first)."""
    parts, node, i = path.split("."), data, 0
    while i < len(parts):
        if isinstance(node, list):
            node, i = node[int(parts[i])], i + 1
            continue
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if isinstance(node, dict) and key in node:
                node, i = node[key], j
                break
        else:
            raise KeyError(f"no key {'.'.join(parts[i:])!r} at {'.'.join(parts[:i]) or 'root'}")
    return node


def expected_numbers(value, count: int) -> list[float]:
    """The numbers a quote of ``count`` numbers states about ``value``."""
    if isinstance(value, dict) and "mean" in value:
        return [value["mean"]] if count == 1 else [value["mean"], *value["ci95"]]
    if isinstance(value, list):
        return list(value)
    return [value]


def _text(x: float, decimals: int) -> str:
    s = f"{x:.{decimals}f}"
    return s[1:] if re.fullmatch(r"-0\.?0*", s) else s  # -0.000 is written 0.000


def check_quote(quoted: str, value) -> str | None:
    """None when ``quoted`` states ``value`` to its own precision, else the reason."""
    found = NUMBER.findall(quoted)
    if not found:
        return f"no number in {quoted!r}"
    scale = 100.0 if "%" in quoted or "points" in quoted else 1.0  # percent (points)
    want = expected_numbers(value, len(found))
    if len(want) != len(found):
        return f"{quoted!r} quotes {len(found)} numbers, the JSON holds {len(want)}: {want}"
    for q, w in zip(found, want):
        q = q.replace("\u2212", "-").lstrip("+")
        decimals = len(q.split(".")[1]) if "." in q else 0
        if w is None or _text(w * scale, decimals) != _text(float(q), decimals):
            return f"{quoted!r}: {q} != JSON {w if w is None else _text(w * scale, decimals)}"
    return None


# --------------------------------------------------------------------------- generated blocks


def _seeds(study: dict) -> str:
    if "seeds" not in study:
        return "none (a timing benchmark)"
    seeds = study["seeds"]
    if not all(isinstance(x, int) for x in seeds):  # transfer: one seed record per repetition
        return f"{study['n']} repetitions (their seeds: `seeds`)"
    run = all(b - a == 1 for a, b in itertools.pairwise(seeds))
    listed = f"{seeds[0]}–{seeds[-1]}" if run and len(seeds) > 2 else ", ".join(map(str, seeds))
    return f"training seeds {listed} (n = {study.get('n', len(seeds))})"


def source(name: str, file: str = "study.json", seeds: str | None = None) -> str:
    """The source line under every generated table or figure."""
    study = load(f"{name}/{file}")
    seeds = seeds or _seeds(study)
    attack = study.get("attack", {})
    if name == "apr":  # every model is attacked under attack seeds 0, 1, ... (sampled negatives)
        seeds += f"; attack seeds 0–{attack['attack_seeds'] - 1}"
    if name == "poisoning":  # each training seed draws its own fake profiles
        seeds += f"; {study['attack_draws']} draws of every attack, one per seed"
    if name == "text_towers":  # the random baseline's draws (the gradient attack is deterministic)
        seeds += f"; random-substitution draws 0–{attack['attack_seeds'] - 1}"
    return f"*Source:* `{STUDIES[name]}`; {seeds}; evidence `docs/evidence/{name}/{file}`."


def fmt(entry: dict | float, digits: int = 4, *, signed: bool = False, pct: bool = False):
    """``mean [lo, hi]`` of an interval entry (or a plain number), as the studies write it."""
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    scale = 100.0 if pct else 1.0
    unit = "%" if pct else ""
    if not isinstance(entry, dict):
        return f.format(entry * scale) + unit
    lo, hi = entry["ci95"]
    mean = f.format(entry["mean"] * scale) + unit
    if lo is None:
        return f"{mean} (n=1)"
    return f"{mean} [{f.format(lo * scale)}, {f.format(hi * scale)}]"


def table(header: list[str], rows: list[list[str]], src: str) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + src + "\n"


def figure(name: str, png: str, alt: str, file: str = "study.json") -> str:
    return f"![{alt}](../evidence/{name}/{png})\n\n{source(name, file)}\n"


APR_LABELS = {
    "bpr": "BPR (untuned)",
    "bpr-tuned": "BPR (tuned: L2 1e-2)",
    "apr": "APR",
    "pgd-at": "PGD-AT",
    "vat": "VAT",
    "trades": "TRADES",
    "free-at": "free AT (4 replays)",
}


def apr_methods() -> str:
    s = load("apr/study.json")
    rows = []
    for m, e in s["methods"].items():
        rows.append([
            APR_LABELS.get(m, m),
            fmt(e["clean/ndcg@20"]),
            fmt(e["auc/relative"]),
            fmt(e["drop@0.5/relative"], 1, pct=True),
            fmt(e["auc/absolute"]),
            f"{e['norms']['user']['mean']['mean']:.2f} / {e['norms']['item']['mean']['mean']:.2f}",
        ])  # fmt: skip
    header = ["method", "clean NDCG@20", "AUC, relative budget", "change at relative eps 0.5",
              "AUC, absolute budget", "mean row norm user / item"]  # fmt: skip
    return table(header, rows, source("apr"))


def apr_paired() -> str:
    s = load("apr/study.json")
    rows = []
    for m, e in s["paired"].items():
        rows.append([
            APR_LABELS.get(m, m),
            fmt(e["clean/ndcg@20"], signed=True),
            fmt(e["auc/relative"], signed=True),
            fmt(e["drop@0.5/relative"], 1, signed=True, pct=True).replace("%", " points", 1),
            fmt(e["auc/absolute"], signed=True),
        ])  # fmt: skip
    header = ["method − tuned BPR", "Δ clean NDCG@20", "Δ AUC relative",
              "Δ change at relative eps 0.5", "Δ AUC absolute"]  # fmt: skip
    return table(header, rows, source("apr"))


def apr_cost() -> str:
    """Training seconds: mean [CI] over seeds, and the fastest seed (the least disturbed by
    other jobs on the machine) against untuned BPR's fastest."""
    s = load("apr/study.json")
    base = min(s["methods"]["bpr"]["train_seconds"]["values"])
    rows = [
        [
            APR_LABELS.get(m, m),
            fmt(e["train_seconds"], 1),
            f"{min(e['train_seconds']['values']):.1f}",
            f"{min(e['train_seconds']['values']) / base:.1f}x",
        ]
        for m, e in s["methods"].items()
    ]
    header = ["method", "seconds per run, mean [95% CI]", "fastest seed", "fastest ÷ BPR's fastest"]
    return table(header, rows, source("apr"))


SEQ_LABELS = {"sasrec": "SASRec", "sasrec-apr": "SASRec + APR", "sasrec-pgd": "SASRec + PGD-AT"}
SEQ_FIGURES = [
    ("clean/sampled_hr@10", "clean HR@10"),
    ("substitution@1/sampled_hr@10", "1 item substituted"),
    ("substitution@2/sampled_hr@10", "2 items"),
    ("substitution@4/sampled_hr@10", "4 items"),
    ("auc/pgd_relative", "PGD AUC (relative)"),
]


def seq_methods() -> str:
    s = load("seq_robustness/study.json")
    rows = [
        [SEQ_LABELS.get(m, m), *[fmt(e[f]) for f, _ in SEQ_FIGURES]]
        for m, e in s["methods"].items()
    ]
    rows += [
        [f"{SEQ_LABELS.get(m, m)} − SASRec", *[fmt(e[f], signed=True) for f, _ in SEQ_FIGURES]]
        for m, e in s["paired"].items()
    ]
    return table(["model", *[label for _, label in SEQ_FIGURES]], rows, source("seq_robustness"))


def attack_cost() -> str:
    r = load("attack_cost/attack_cost.json")
    order = ["clean", "apr", "apr-generic", "pgd-1", "pgd-3", "pgd-5", "pgd-10", "pgd-20",
             "pgd-10-generic", "free-4", "vat"]  # fmt: skip
    rows = [
        [f"`{v}`", f"{r['variants'][v]['step_ms']:.2f}", f"{r['variants'][v]['ratio_to_clean']:.2f}",
         r["variants"][v]["cost_model"]]
        for v in order if v in r["variants"]
    ]  # fmt: skip
    src = (
        f"*Source:* `{STUDIES['attack_cost']}`; a timing benchmark (no training seed): "
        f"median of {r['rounds']} interleaved rounds of {r['epochs_timed']} timed epochs, "
        f"{r['cpu_count']}-core CPU, jax {r['jax']}, recorded {r['time'][:10]}; "
        "evidence `docs/evidence/attack_cost/attack_cost.json`."
    )
    return table(["variant", "ms / step", "x clean", "passes per step"], rows, src)


NOISE_MODELS = {"bpr-mf": "BPR-MF", "apr-mf": "APR-MF"}


def noise_table(key: str) -> str:
    """``key`` (test NDCG@20 under one mask) at every noise level, its relative change at
    level 0.3 and its area, per model and noise kind."""
    r = load("natural_noise/results.json")
    levels = r["levels"]
    j = levels.index(0.3)
    rows = []
    for model in r["models"]:
        for kind in r["kinds"]:
            e = r["training_time"][kind]["models"][model][key]
            rows.append([
                NOISE_MODELS.get(model, model),
                kind,
                *[fmt(x["mean"]) for x in e["levels"]],
                fmt(e["rel_change"][j], 1, signed=True, pct=True),
                fmt(e["auc"]),
            ])  # fmt: skip
    header = ["model", "noise", *[f"level {lv:g}" for lv in levels],
              f"change at {levels[j]:g}", "AUC"]  # fmt: skip
    return table(header, rows, source("natural_noise", "results.json"))


def noise_paired() -> str:
    """APR-MF minus BPR-MF on the same seeds and noise, under both masks."""
    r = load("natural_noise/results.json")
    j = r["levels"].index(0.3)
    rows = []
    for label, key in (("observed", "test/ndcg@20"), ("clean", "clean_mask/test/ndcg@20")):
        for kind in r["kinds"]:
            for figs in r["training_time"][kind]["paired"]["vs_baseline"].values():
                e = figs[key]
                rows.append([
                    label,
                    kind,
                    fmt(e["levels"][j], signed=True),
                    fmt(e["rel_change"][j], 1, signed=True, pct=True).replace("%", " points", 1),
                    fmt(e["auc"], signed=True),
                ])  # fmt: skip
    header = ["mask", "noise", f"Δ NDCG@20 at level {r['levels'][j]:g}",
              f"Δ change at {r['levels'][j]:g}", "Δ AUC"]  # fmt: skip
    return table(header, rows, source("natural_noise", "results.json"))


IRGAN_LABELS = {
    "bpr-mf": "BPR-MF",
    "apr-mf": "APR-MF",
    "irgan-init": "IRGAN start (BPR-pretrained)",
    "irgan-g": "IRGAN generator G",
    "irgan-d": "IRGAN discriminator D",
}


def irgan() -> str:
    s = load("irgan/results.json")
    rows = []
    order = [m for m in IRGAN_LABELS if m in s["rows"]] + [
        m for m in s["rows"] if m not in IRGAN_LABELS
    ]
    for m in order:
        e, paired = s["rows"][m], s["paired"].get(m)
        rows.append([
            IRGAN_LABELS.get(m, m),
            fmt(e["test"]["recall"]),
            fmt(e["test"]["ndcg"]),
            fmt(e["valid"]["ndcg"]),
            fmt(paired["test"]["ndcg"], signed=True) if paired else "(baseline)",
        ])  # fmt: skip
    header = [
        "model",
        "test Recall@20",
        "test NDCG@20",
        "valid NDCG@20",
        "Δ test NDCG@20 vs BPR-MF",
    ]
    return table(header, rows, source("irgan", "results.json"))


def _transfer_source() -> str:
    return source("transfer", "results.json")


def transfer_fake() -> str:
    """Target HR@K gain (after − before) of each surrogate's profiles on each victim."""
    f = load("transfer/results.json")["fake_profiles"]
    key = f"target_hr@{f['k']}/delta"
    cell = {(c["surrogate"], c["victim"]): c for c in f["cells"]}
    base = f["paired"]["baseline"]
    label = {row: f"{row} (heuristic reference)" if row == base else row for row in f["rows"]}
    rows = [
        [label[row], *[fmt(cell[row, v][key], signed=True) for v in f["victims"]]]
        for row in f["rows"]
    ]
    paired = {(q["surrogate"], q["victim"]): q for q in f["paired"]["cells"]}
    rows += [
        [f"{row} − {base}", *[fmt(paired[row, v][key], signed=True) for v in f["victims"]]]
        for row in f["rows"]
        if (row, f["victims"][0]) in paired
    ]
    return table(["surrogate → victim", *f["victims"]], rows, _transfer_source())


def transfer_histories() -> str:
    """HR@10 drop of each crafted history edit on each sequential model."""
    h = load("transfer/results.json")["histories"]
    rows = [
        [
            "random substitution (baseline)"
            if r["attack"] == "random"
            else f"{r['surrogate']} ({r['attack']})",
            *[fmt(r["cells"][m]["hr@10/drop"], signed=True) for m in h["models"]],
        ]
        for r in h["rows"]
    ]
    rows += [
        [
            f"{p['surrogate']} − random",
            *[fmt(p["cells"][m]["hr@10/drop"], signed=True) for m in h["models"]],
        ]
        for p in h["paired"]["rows"]
    ]
    return table(["edits crafted on → evaluated on", *h["models"]], rows, _transfer_source())


TEXT_LABELS = {"mf": "MF (IDs)", "text-mf": "text-MF", "text-mf-adv": "text-MF + AT on tokens"}


def text_towers() -> str:
    s = load("text_towers/study.json")
    figs = [
        ("clean/ndcg@20", "test NDCG@20, warm items"),
        ("cold/ndcg@20", "NDCG@20, cold items"),
        ("gradient@0/target_hr@20", "target HR@20, clean text"),
        ("gradient@1/target_hr@20", "target HR@20, 1 token (gradient)"),
        ("gradient@8/target_hr@20", "target HR@20, 8 tokens (gradient)"),
        ("random@8/target_hr@20", "target HR@20, 8 tokens (random)"),
        ("train_seconds", "training seconds"),
    ]
    methods = list(s["methods"])
    rows = []
    for key, label in figs:
        digits = 1 if key == "train_seconds" else 4
        cells = [fmt(s["methods"][m][key], digits) if key in s["methods"][m] else "n/a"
                 for m in methods]  # fmt: skip
        rows.append([label, *cells])
    return table(["figure", *[TEXT_LABELS[m] for m in methods]], rows, source("text_towers"))


def text_towers_paired() -> str:
    s = load("text_towers/study.json")
    figs = ["clean/ndcg@20", "cold/ndcg@20", "gradient@1/target_hr@20", "gradient@8/target_hr@20",
            "gradient@8/ndcg@20"]  # fmt: skip
    rows = [
        [
            f"{TEXT_LABELS[m]} − text-MF",
            *[fmt(e[f], signed=True) if f in e else "n/a" for f in figs],
        ]
        for m, e in s["paired"].items()
    ]
    return table(["difference", *figs], rows, source("text_towers"))


POISON_DEFENCES = {
    "none": "none",
    "apr": "APR",
    "detect": "remove flagged users",
    "downweight": "down-weight flagged users",
}


def poisoning() -> str:
    """Target HR@50 before and after poisoning, and the clean metric, per attack and
    defence."""
    s = load("poisoning/results.json")
    rows = []
    for r in s["rows"]:
        det = fmt(r["detector_auc"], 3) if "detector_auc" in r else "–"
        rows.append([
            r["attack"], POISON_DEFENCES[r["defence"]],
            fmt(r["target_hr@50/before"]), fmt(r["target_hr@50/after"]),
            fmt(r["paired"]["vs_clean"]["target_hr@50"], signed=True),
            fmt(r["test_ndcg@20/after"]), det,
        ])  # fmt: skip
    header = ["attack", "defence", "target HR@50 clean", "target HR@50 poisoned",
              "Δ (poisoned − clean)", "test NDCG@20 poisoned", "detector AUC"]  # fmt: skip
    return table(header, rows, source("poisoning", "results.json"))


def poisoning_defences() -> str:
    """Each defence minus no defence, paired by seed."""
    s = load("poisoning/results.json")
    rows = []
    for r in s["rows"]:
        if r["defence"] == "none":
            continue
        e = r["paired"]["vs_no_defence"]
        rows.append([
            r["attack"], POISON_DEFENCES[r["defence"]],
            fmt(e["target_hr@50/after"], signed=True), fmt(e["target_hr@50/gain"], signed=True),
            fmt(e["test_ndcg@20/before"], signed=True),
        ])  # fmt: skip
    header = ["attack", "defence − none", "Δ target HR@50 poisoned", "Δ gain (poisoned − clean)",
              "Δ test NDCG@20 clean"]  # fmt: skip
    return table(header, rows, source("poisoning", "results.json"))


def poisoning_lead() -> str:
    """The unrolled attack minus the best heuristic, paired by seed."""
    s = load("poisoning/results.json")
    rows = [
        [
            POISON_DEFENCES[e["defence"]],
            e["best_heuristic"],
            fmt(e["diff"], signed=True),
            f"{e['ahead']} of {e['n']}",
        ]
        for e in s["lead"]
    ]
    header = ["defence", "best heuristic (by mean)", "Δ target HR@50 poisoned", "seeds ahead"]
    return table(header, rows, source("poisoning", "results.json"))


def number_index() -> str:
    """Every number the guide quotes inline and every generated table or figure, with the
    study, seeds and JSON key it comes from (the index on docs/reproducibility.md)."""
    rows = []
    for path in pages()[:-1]:  # the guide pages; reproducibility.md holds the index itself
        text, page = _read(path), os.path.basename(path)
        link = f"[{page.removesuffix('.md')}](guide/{page})"
        for m in INLINE.finditer(text):
            name = m[2].split("/")[0]
            rows.append([link, f"`{m[1]}`", f"`{name}`", _seeds(load(m[2])), f"`{m[3]}`"])
        for m in BLOCK.finditer(text):
            files = re.findall(r"evidence `docs/evidence/([^`]+)`", m[2])
            name = files[0].split("/")[0] if files else "?"
            seeds = _seeds(load(files[0])) if files else "–"
            kind = "figure" if IMAGE.search(m[2]) else "table"
            rows.append([link, f"{kind} `{m[1]}`", f"`{name}`", seeds, "generated from the file"])
    header = ["page", "quoted", "study", "seeds", "JSON key"]
    return table(
        header,
        rows,
        "*Source:* the markers of the guide pages (`tests/docs/test_docs_numbers.py`).",
    )


BLOCKS = {
    "apr-methods": apr_methods,
    "apr-paired": apr_paired,
    "apr-cost": apr_cost,
    "apr-curves-relative": lambda: figure(
        "apr", "curves_relative.png", "test NDCG@20 against relative eps, mean and 95% band"
    ),
    "apr-curves-absolute": lambda: figure(
        "apr", "curves_absolute.png", "test NDCG@20 against absolute eps, mean and 95% band"
    ),
    "seq-methods": seq_methods,
    "seq-curves-pgd": lambda: figure(
        "seq_robustness", "curves_pgd.png", "sampled HR@10 against relative eps, mean and 95% band"
    ),
    "attack-cost": attack_cost,
    "noise-observed": lambda: noise_table("test/ndcg@20"),
    "noise-clean-mask": lambda: noise_table("clean_mask/test/ndcg@20"),
    "noise-paired": noise_paired,
    "noise-swap": lambda: figure(
        "natural_noise",
        "ndcg_at_20_swap.png",
        "test NDCG@20 (observed mask) against the swap noise level, mean and 95% band",
        file="results.json",
    ),
    "irgan": irgan,
    "irgan-valid": lambda: figure(
        "irgan",
        "irgan_valid.png",
        "validation NDCG@20 of G and D per GAN epoch, mean and 95% band",
        file="results.json",
    ),
    "transfer-fake": transfer_fake,
    "transfer-histories": transfer_histories,
    "number-index": number_index,
    "poisoning": poisoning,
    "poisoning-defences": poisoning_defences,
    "poisoning-lead": poisoning_lead,
    "poisoning-plot": lambda: figure(
        "poisoning",
        "results.png",
        "target HR@50 after poisoning per attack and defence, mean and 95% interval",
        file="results.json",
    ),
    "text-towers": text_towers,
    "text-towers-paired": text_towers_paired,
    "text-towers-gradient": lambda: figure(
        "text_towers",
        "target_hr_text_substitute_gradient.png",
        "target HR@20 against the number of substituted tokens, gradient-guided",
    ),
    "text-towers-random": lambda: figure(
        "text_towers",
        "target_hr_text_substitute_random.png",
        "target HR@20 against the number of substituted tokens, random",
    ),
}


def render(text: str) -> str:
    """``text`` with every generated block written again from the evidence."""
    return BLOCK.sub(
        lambda m: f"<!-- begin: {m[1]} -->\n{BLOCKS[m[1]]()}<!-- end: {m[1]} -->", text
    )


# ------------------------------------------------------------------------------------ tests


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def test_inline_numbers_match_evidence():
    errors, count = [], 0
    for path in pages():
        text = _read(path)
        for m in INLINE.finditer(text):
            count += 1
            line = text.count("\n", 0, m.start()) + 1
            try:
                reason = check_quote(m[1], resolve(load(m[2]), m[3]))
            except (OSError, KeyError, IndexError, ValueError) as e:
                reason = f"{m[2]} {m[3]}: {e!r}"
            if reason:
                errors.append(f"{_rel(path)}:{line}: {reason}")
    assert not errors, "quoted numbers that do not match their evidence:\n" + "\n".join(errors)
    assert count > 0


def test_generated_blocks_match_evidence():
    errors = []
    for path in pages():
        text = _read(path)
        for m in BLOCK.finditer(text):
            if m[1] not in BLOCKS:
                errors.append(f"{_rel(path)}: unknown block {m[1]!r}")
            elif m[2] != BLOCKS[m[1]]():
                errors.append(f"{_rel(path)}: block {m[1]!r} differs from its evidence")
    assert not errors, (
        "\n".join(errors)
        + "\nwrite the blocks again: .venv/bin/python tests/docs/test_docs_numbers.py"
    )


def test_no_unchecked_numbers():
    errors = []
    for path in pages():
        text = _read(path)
        text = BLOCK.sub("", INLINE.sub("", text))
        text = re.sub(r"<!--.*?-->", "", CODE.sub("", text), flags=re.DOTALL)
        for m in UNCHECKED.finditer(text):
            errors.append(f"{_rel(path)}: {m[0]!r} has no evidence marker")
    assert not errors, "\n".join(errors)


def test_images_are_committed_evidence():
    for path in pages():
        text = _read(path)
        outside = IMAGE.findall(BLOCK.sub("", text))
        assert not outside, f"{_rel(path)}: {outside} outside a generated block (no source line)"
        for src in IMAGE.findall(text):
            target = os.path.normpath(os.path.join(os.path.dirname(path), src))
            assert target.startswith(EVIDENCE + os.sep), f"{_rel(path)}: {src} is not evidence"
            assert os.path.isfile(target), f"{_rel(path)}: {src} is missing"
            beside = glob.glob(os.path.join(os.path.dirname(target), "*.json"))
            assert beside, f"{_rel(path)}: {src} has no study JSON beside it"


def test_every_command_is_in_the_reproduce_script():
    script = _read(REPRODUCE)
    missing = [name for name, cmd in STUDIES.items() if cmd not in " ".join(script.split())]
    assert not missing, f"benchmarks/reproduce_docs.sh does not run {missing}"


def test_check_quote_catches_a_mismatch():
    entry = {"mean": 0.34164, "ci95": [0.33951, 0.34372], "values": [], "n": 5}
    assert check_quote("0.3416 [0.3395, 0.3437]", entry) is None
    assert check_quote("0.3416", entry) is None
    assert check_quote("0.3417", entry) is not None
    assert check_quote("0.3416 [0.3395, 0.3438]", entry) is not None
    assert check_quote("−46.2%", -0.4617) is None
    assert check_quote("+4.6%", -0.046) is not None
    assert resolve({"drop@0.5/relative": {"mean": 1.0}}, "drop@0.5/relative.mean") == 1.0


if __name__ == "__main__":
    for path in pages():
        old = _read(path)
        new = render(old)
        if new != old:
            with open(path, "w") as f:
                f.write(new)
            print("wrote", _rel(path))
