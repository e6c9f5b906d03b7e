"""SASRec on ml-1m: time per epoch (length-bucketed vs full-length batches), steps per
second, and HR@10 / NDCG@10 (100 sampled negatives).

Runs the ``sasrec-ml1m`` settings (max_len 200, 2 blocks, dim 50, dropout 0.2, batch 128,
Adam 2e-3) once per ``--buckets`` value, side by side in one process, for ``--epochs``
epochs each, and writes one JSON record: device, versions, shapes, and per setting the
median epoch time (the first epoch, which compiles, apart), training steps per second,
and the test metrics of the validation-selected model. The ratio of full-length to
bucketed epoch time is the speed-up of length bucketing. The same command runs on a lent
GPU (JAX picks the accelerator); there ``--epochs 20 --buckets 4`` also gives the
accuracy after 20 epochs.

Usage: python -m benchmarks.sasrec_ml1m [--epochs 3] [--buckets 4,1] [--data ../shared/data/ml-1m]
or: robustjax bench sasrec_ml1m [the same arguments]
"""

import argparse
import json
import os
import tempfile

import numpy as np

from benchmarks._common import SHARED, environment, write_record
from robustjax.runs import run_sasrec

SETTINGS = {
    "max_len": 200,
    "dim": 50,
    "num_blocks": 2,
    "num_heads": 1,
    "dropout": 0.2,
    "batch_size": 128,
    "lr": 2e-3,
}


def time_setting(data: str, buckets: int, epochs: int, eval_every: int) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        metrics = run_sasrec(
            data_path=data,
            out_dir=run_dir,
            epochs=epochs,
            buckets=buckets,
            eval_every=eval_every,
            progress=False,
            **SETTINGS,
        )
        with open(os.path.join(run_dir, "history.jsonl")) as f:
            history = [json.loads(line) for line in f]
    # training seconds only (run_sasrec times the epoch call, validation apart)
    seconds = [h["seconds"] for h in history[1:]]
    epoch_s = float(np.median(seconds)) if seconds else float(history[0]["seconds"])
    steps = metrics["num_users"] // SETTINGS["batch_size"]  # at most; buckets may drop more
    return {
        "buckets": buckets,
        "epochs": epochs,
        "epoch_s_median": epoch_s,
        "first_epoch_s": float(history[0]["seconds"]),
        "steps_per_s": steps / epoch_s,
        "metrics": {k: v for k, v in metrics.items() if k.startswith(("test/", "valid/"))},
        "best_epoch": metrics["best_epoch"],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-1m"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--buckets",
        default="4,1",
        help="comma-separated bucket counts to time side by side (1 = full length)",
    )
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    runs = {}
    for b in (int(x) for x in args.buckets.split(",")):
        runs[str(b)] = time_setting(args.data, b, args.epochs, args.eval_every)
        print(
            f"buckets={b}: {runs[str(b)]['epoch_s_median']:.2f} s/epoch, "
            f"{runs[str(b)]['steps_per_s']:.2f} steps/s, test HR@10 (100 sampled negatives) "
            f"{runs[str(b)]['metrics'].get('test/sampled_hr@10', float('nan')):.4f}",
            flush=True,
        )
    record = {"benchmark": "sasrec_ml1m", **environment(), "shapes": SETTINGS, "runs": runs}
    if "1" in runs and len(runs) > 1:
        full = runs["1"]["epoch_s_median"]
        record["speedup_vs_full_length"] = {
            b: full / r["epoch_s_median"] for b, r in runs.items() if b != "1"
        }
    write_record("sasrec_ml1m", record, args.out)


if __name__ == "__main__":
    main()
