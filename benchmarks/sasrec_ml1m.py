"""SASRec on ml-1m: time per epoch, steps per second and HR@10 / NDCG@10 (100 negatives).

Runs the sasrec-ml1m protocol (``robustjax.seq_run.run_sasrec``) for ``--epochs`` epochs and
writes one JSON record: device, versions, shapes, the median epoch time, training steps per
second, compile time, and the test metrics of the validation-selected model. Prepared for a
lent GPU as well (the same command; JAX picks the accelerator).

Usage: python benchmarks/sasrec_ml1m.py [--epochs 20] [--data ../shared/data/ml-1m]
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import SHARED, environment, write_record  # noqa: E402

from robustjax.seq_run import run_sasrec  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-1m"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as run_dir:
        metrics = run_sasrec(data_path=args.data, out_dir=run_dir, epochs=args.epochs,
                             batch_size=args.batch_size, eval_every=args.eval_every)
        with open(os.path.join(run_dir, "history.jsonl")) as f:
            history = [json.loads(line) for line in f]
    seconds = [h["seconds"] for h in history[1:] if "valid/hr@10" not in h]
    epoch_s = float(np.median(seconds)) if seconds else float(history[0]["seconds"])
    steps = 6040 // args.batch_size if "ml-1m" in args.data else None  # last batch dropped
    record = {"benchmark": "sasrec_ml1m", **environment(), "epochs": args.epochs,
              "shapes": {"max_len": 200, "dim": 50, "num_blocks": 2, "batch_size": args.batch_size},
              "epoch_s_median": epoch_s, "first_epoch_s": float(history[0]["seconds"]),
              "steps_per_s": (steps / epoch_s) if steps else None, "metrics": metrics}
    write_record("sasrec_ml1m", record, args.out)


if __name__ == "__main__":
    main()
