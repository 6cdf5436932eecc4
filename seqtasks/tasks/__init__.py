"""One LightningModule per task family."""

from seqtasks.tasks.base import SeqTask, load_task
from seqtasks.tasks.classification import SequenceClassifier
from seqtasks.tasks.tagging import TokenTagger

__all__ = ["SeqTask", "SequenceClassifier", "TokenTagger", "load_task"]
