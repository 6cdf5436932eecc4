"""seqtasks: recurrent sequence models for tagging, classification, translation and music."""

__version__ = "0.1.0"
