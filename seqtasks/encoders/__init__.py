"""Pluggable recurrent encoders: plain nn.Modules, no Lightning."""

from seqtasks.encoders.base import EncoderOutput, RecurrentEncoder, State, require_unidirectional
from seqtasks.encoders.elman import ElmanRNNEncoder
from seqtasks.encoders.rnn import GRUEncoder, LSTMEncoder, RNNEncoder, TorchRNNEncoder

__all__ = [
    "ElmanRNNEncoder",
    "EncoderOutput",
    "GRUEncoder",
    "LSTMEncoder",
    "RNNEncoder",
    "RecurrentEncoder",
    "State",
    "TorchRNNEncoder",
    "require_unidirectional",
]
