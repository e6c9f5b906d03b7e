"""Training runs that write a run folder: sequential models (SASRec, BERT4Rec)."""

from robustjax.runs.keywords import run_bert4rec, run_sasrec
from robustjax.runs.sequence import run_sequence_experiment
from robustjax.runs.sequence_io import (
    SEQUENCE_MODELS,
    SequenceRun,
    is_sequence_run,
    load_sequence_run,
    load_table,
    register_sequence_model,
    save_sequence_run,
)

__all__ = [
    "SEQUENCE_MODELS",
    "SequenceRun",
    "is_sequence_run",
    "load_sequence_run",
    "load_table",
    "register_sequence_model",
    "run_bert4rec",
    "run_sasrec",
    "run_sequence_experiment",
    "save_sequence_run",
]
