"""One LightningModule per task family."""

from seqtasks.tasks.base import SeqTask, load_task
from seqtasks.tasks.classification import SequenceClassifier

__all__ = ["SeqTask", "SequenceClassifier", "load_task"]
