"""One LightningModule per task family: the training system around a network from seqtasks.networks."""

from seqtasks.checkpoints import load_task
from seqtasks.tasks.base import SeqTask
from seqtasks.tasks.classification import SequenceClassifier
from seqtasks.tasks.language_model import LanguageModel
from seqtasks.tasks.music import EventComposer, PianoRollComposer
from seqtasks.tasks.tagging import TokenTagger
from seqtasks.tasks.translation import Seq2SeqTranslator

__all__ = [
    "EventComposer",
    "LanguageModel",
    "PianoRollComposer",
    "Seq2SeqTranslator",
    "SeqTask",
    "SequenceClassifier",
    "TokenTagger",
    "load_task",
]
