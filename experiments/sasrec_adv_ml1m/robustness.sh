#!/bin/bash
# Plain vs adversarially fine-tuned SASRec on ml-1m, then history sweeps (README.md).
# Usage (from the repository root): bash experiments/sasrec_adv_ml1m/robustness.sh [OUT]
set -e
cd "$(dirname "$0")/../.."
R="${ROBUSTJAX:-robustjax}"
D=../shared/data/ml-1m
O="${1:-runs/item3}"
M="--set model.max_len=100 --set train.buckets=1"  # the settings of the figures in README.md
[ -f "$O/sasrec/checkpoint/params.npz" ] || \
  $R train --experiment sasrec-ml1m --data $D $M --set train.epochs=100 --out "$O/sasrec" --no-progress
$R train --experiment sasrec-ml1m --data $D $M --set train.init_from="$O/sasrec" --set train.epochs=30 --out "$O/sasrec_ft" --no-progress
$R train --experiment sasrec-adv-ml1m --data $D $M --set train.init_from="$O/sasrec" --out "$O/sasrec_adv" --no-progress
C="--checkpoint $O/sasrec_ft --checkpoint $O/sasrec_adv --no-progress"
$R sweep $C --objective oracle --attack substitute_gradient --eps 0,1,2,3,4 --out "$O/sweep_subst"
$R sweep $C --objective oracle --attack pgd --steps 5 --eps 0,1,2,4,8 --budget absolute --out "$O/sweep_pgd"
$R sweep $C --objective oracle --attack substitute_random --eps 0,1,2,4 --seeds 0,1 --out "$O/sweep_random"
