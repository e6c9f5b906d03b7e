#!/usr/bin/env bash
# Regenerates every number, table and plot of the documentation (docs/guide/,
# docs/reproducibility.md) from scratch: runs each study with the seeds the pages quote,
# copies its output into docs/evidence/<study>/, then rewrites the generated blocks of the
# pages and checks every quoted number (tests/docs/test_docs_numbers.py).
#
# Long-running (several hours on a 2-core CPU; not part of any test suite). Run from the
# project root with the virtual environment's robustjax, the data sets in ../shared/data.
# An interrupted study continues where it stopped (--resume; poisoning restarts).
#
#   bash benchmarks/reproduce_docs.sh            # every study
#   bash benchmarks/reproduce_docs.sh apr        # only the named ones
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/.venv/bin:$PATH"
mkdir -p runs/evidence

want() { [ $# -eq 0 ] || [[ " $* " == *" $STUDY "* ]]; }

# copy <study> <run folder> <files...>: the study's output that the pages quote or show
copy() {
    local name=$1 src=$2; shift 2
    mkdir -p "docs/evidence/$name"
    for f in "$@"; do cp "$src/$f" "docs/evidence/$name/"; done
}

STUDY=apr; if want "$@"; then
    robustjax study apr --data ../shared/data/ml-100k-split --seeds 5 --out runs/evidence/study_apr --resume
    copy apr runs/evidence/study_apr study.json study.md curves_relative.png curves_absolute.png
fi
STUDY=seq_robustness; if want "$@"; then
    robustjax study seq-robustness --data ../shared/data/ml-100k --seeds 5 --out runs/evidence/study_seq --resume
    copy seq_robustness runs/evidence/study_seq study.json study.md curves_pgd.png curves_substitution.png
fi
STUDY=natural_noise; if want "$@"; then
    robustjax study natural-noise --data ../shared/data/ml-100k-split --out runs/evidence/noise --seeds 5 --resume
    # results.json holds every run's metrics (large): the evidence keeps the quoted summary
    mkdir -p docs/evidence/natural_noise
    python -m benchmarks.extract_evidence natural-noise runs/evidence/noise/results.json \
        docs/evidence/natural_noise/results.json
    copy natural_noise runs/evidence/noise results.md ndcg_at_20_swap.png
fi
STUDY=irgan; if want "$@"; then
    robustjax study irgan --data ../shared/data/ml-100k-split --out runs/evidence/irgan --resume
    copy irgan runs/evidence/irgan results.json results.md irgan_valid.png
fi
STUDY=transfer; if want "$@"; then
    robustjax study transfer --data ../shared/data/ml-100k-split --out runs/evidence/transfer --seeds 5 --resume
    copy transfer runs/evidence/transfer results.json results.md results.png
fi
STUDY=poisoning; if want "$@"; then
    # the poisoning study cannot resume: it needs a fresh --out
    robustjax study poisoning --data ../shared/data/ml-100k-split --out runs/evidence/poison
    copy poisoning runs/evidence/poison results.json results.md results.png
fi
STUDY=attack_cost; if want "$@"; then
    python -m benchmarks.attack_cost
    mkdir -p docs/evidence/attack_cost
    cp "$(ls -t benchmarks/results/attack_cost-*.json | head -1)" docs/evidence/attack_cost/attack_cost.json
fi
STUDY=text_towers; if want "$@"; then
    robustjax study text-towers --data ../shared/data/ml-100k --seeds 3 --set methods=mf,text-mf,text-mf-adv --out runs/study_text_adv --resume
    copy text_towers runs/study_text_adv study.json study.md \
        target_hr_text_substitute_gradient.png target_hr_text_substitute_random.png
fi

python tests/docs/test_docs_numbers.py      # rewrite the generated tables and figures
python -m pytest -q tests/docs/test_docs_numbers.py
