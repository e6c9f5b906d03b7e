"""The part of a large study output that the documentation quotes, as a smaller JSON.

``docs/evidence/<study>/`` holds each study's JSON as the study wrote it, unless it is
large (over 300 KB): then this script keeps the summary (means, intervals, per-seed values,
paired differences) of the metrics the guide quotes and drops the raw per-run metrics,
which the summary is computed from. Values are copied, never recomputed.

Usage (run by ``benchmarks/reproduce_docs.sh``)::

    python -m benchmarks.extract_evidence natural-noise runs/evidence/noise/results.json \
        docs/evidence/natural_noise/results.json
"""

import argparse
import json

# natural-noise: test metrics under the observed mask (what a deployed system reports) and
# under the clean mask (the model's own loss; see the study's README)
NOISE_METRICS = (
    "test/ndcg@20",
    "test/recall@20",
    "clean_mask/test/ndcg@20",
    "clean_mask/test/recall@20",
)


def _is_metric_key(key: str) -> bool:
    """A metric name such as ``test/ndcg@20`` or ``clean_mask/test/auc`` (not ``auc``, the
    area of a curve, nor a section name)."""
    last = key.rpartition("/")[2]
    return "/" in key and ("@" in last or last == "auc")


def _keep_metrics(node, keep: tuple[str, ...]):
    if isinstance(node, dict):
        return {
            k: _keep_metrics(v, keep)
            for k, v in node.items()
            if not (_is_metric_key(k) and k not in keep)
        }
    if isinstance(node, list):
        return [_keep_metrics(v, keep) for v in node]
    return node


def natural_noise(results: dict) -> dict:
    """``results.json`` of ``robustjax study natural-noise`` without ``runs`` (the raw
    per-run metrics) and with the summaries of ``NOISE_METRICS`` only."""
    out = {k: v for k, v in results.items() if k != "runs"}
    out = _keep_metrics(out, NOISE_METRICS)
    out["extracted"] = {
        "by": "python -m benchmarks.extract_evidence natural-noise",
        "metrics": list(NOISE_METRICS),
        "dropped": ["runs"],
    }
    return out


EXTRACTORS = {"natural-noise": natural_noise}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=sorted(EXTRACTORS))
    parser.add_argument("src", help="the study's JSON")
    parser.add_argument("dst", help="the evidence file to write")
    args = parser.parse_args(argv)
    with open(args.src) as f:
        results = json.load(f)
    with open(args.dst, "w") as f:
        json.dump(EXTRACTORS[args.study](results), f, indent=1, allow_nan=False)
        f.write("\n")


if __name__ == "__main__":
    main()
