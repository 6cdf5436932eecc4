"""Write checkpoints to DIR/last.ckpt in a loop until killed (tests/test_faults.py kills it repeatedly).

Run:  python tests/scripts/save_loop.py DIR [lightning]
Each checkpoint holds ``step`` and a ~8 MB tensor filled with ``step``, so a reader can tell a complete file
from a torn one. ``lightning`` writes through Lightning's own ``TorchCheckpointIO`` (to show the fault the
default ``AtomicCheckpointIO`` removes); ``TMPDIR`` is whatever the caller set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def main() -> None:
    directory = Path(sys.argv[1])
    if sys.argv[2:] == ["lightning"]:
        from lightning.pytorch.plugins.io import TorchCheckpointIO as IO
    else:
        from seqtasks.callbacks import AtomicCheckpointIO as IO
    io = IO()
    step = 0
    print("ready", flush=True)
    while True:
        step += 1
        io.save_checkpoint(
            {"step": step, "weights": torch.full((2_000_000,), float(step))}, directory / "last.ckpt"
        )


if __name__ == "__main__":
    main()
