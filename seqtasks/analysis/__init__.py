"""Analysis tools: the gradient probe and long-range dependency tasks (the vanishing-gradient lab)."""

from seqtasks.analysis.gradients import (
    GradientProfile,
    LinearRNNEncoder,
    probe_classifier,
    probe_encoder,
    scale_recurrent_weights,
)
from seqtasks.analysis.long_range import LongRangeDataset, build_adding_dataset, build_tense_dataset

__all__ = [
    "GradientProfile",
    "LinearRNNEncoder",
    "LongRangeDataset",
    "build_adding_dataset",
    "build_tense_dataset",
    "probe_classifier",
    "probe_encoder",
    "scale_recurrent_weights",
]
