"""Analysis tools: the gradient probe and long-range tasks (the vanishing-gradient lab), and the plain-network
lab (`seqtasks lab`: plain, costs, depth, plain_lab, plain_report)."""

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
