"""Dataset sources, codecs, batching and DataModules.

The DataModules (and so Lightning and ``datasets``) are imported when first named, not with the package:
inference imports a codec from here without paying for them (``seqtasks classify`` starts faster).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DataError": "seqtasks.data.errors",
    "LanguageModelDataModule": "seqtasks.data.language_model",
    "SeqDataModule": "seqtasks.data.datamodule",
    "TextClassificationDataModule": "seqtasks.data.classification",
    "TokenTaggingDataModule": "seqtasks.data.tagging",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
