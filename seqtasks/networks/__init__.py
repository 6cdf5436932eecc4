"""The networks: plain nn.Modules (no Lightning) that the tasks train and the inference API runs.

Each takes the sizes only the data knows first, then its encoder and every architecture setting as typed
arguments; a recipe names one by class path under ``model.init_args.network``.
"""

from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.networks.language_model import LanguageModelNetwork
from seqtasks.networks.music import EventNetwork, PianoRollNADENetwork, PianoRollNetwork
from seqtasks.networks.seq2seq import Seq2SeqNetwork
from seqtasks.networks.tagger import TaggerNetwork

__all__ = [
    "ClassifierNetwork",
    "EventNetwork",
    "LanguageModelNetwork",
    "PianoRollNADENetwork",
    "PianoRollNetwork",
    "Seq2SeqNetwork",
    "TaggerNetwork",
]
