"""Dataset sources, vocabularies, batching and DataModules."""

from seqtasks.data.classification import TextClassificationDataModule
from seqtasks.data.datamodule import SeqDataModule
from seqtasks.data.errors import DataError
from seqtasks.data.tagging import TokenTaggingDataModule

__all__ = ["DataError", "SeqDataModule", "TextClassificationDataModule", "TokenTaggingDataModule"]
