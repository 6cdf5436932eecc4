"""Pluggable recurrent encoders: plain nn.Modules, no Lightning."""

from seqtasks.encoders.base import EncoderOutput, RecurrentEncoder, State, require_unidirectional
from seqtasks.encoders.elman import ElmanEncoder
from seqtasks.encoders.rnn import FusedRecurrentEncoder, GRUEncoder, LSTMEncoder, RNNEncoder

__all__ = [
    "ElmanEncoder",
    "EncoderOutput",
    "FusedRecurrentEncoder",
    "GRUEncoder",
    "LSTMEncoder",
    "RNNEncoder",
    "RecurrentEncoder",
    "State",
    "require_unidirectional",
]

_RENAMED = {"TorchRNNEncoder": "FusedRecurrentEncoder", "ElmanRNNEncoder": "ElmanEncoder"}


def __getattr__(name: str) -> type:
    """The encoders' former names, for recipes and checkpoints written before they were renamed."""
    if name in _RENAMED:
        import warnings

        warnings.warn(
            f"seqtasks.encoders.{name} is now seqtasks.encoders.{_RENAMED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
