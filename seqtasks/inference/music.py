"""Generating music from a trained piano-roll or event model: notes, and their MIDI file and PNG.

:class:`Composer` holds a music task's network and its codec (built from the checkpoint's artefacts) and
samples pieces with a seeded ``torch.Generator``: the same settings give the same notes, and the same
MIDI bytes. ``seqtasks generate``, the :class:`~seqtasks.tasks.music.MusicSample` callback and a server
all call it::

    composer = Composer.from_checkpoint("best.ckpt")
    notes = composer.generate(steps=300, temperature=0.9, top_p=0.9, seed=1, min_steps=200)
    midi_path, png_path = composer.save("piece.mid", notes, title=composer.title(1, 0.9))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from seqtasks.checkpoints import load_task
from seqtasks.music.events import STEPS_PER_QUARTER, EventCodec
from seqtasks.music.midi import midi_to_notes, save_piece
from seqtasks.music.pianoroll import Note, PianoRollCodec
from seqtasks.networks.music import EventNetwork, PianoRollNetwork
from seqtasks.nn.modes import eval_mode
from seqtasks.nn.sampling import check_sampling


class Composer:
    """Sample pieces from a music task (:class:`~seqtasks.tasks.music.PianoRollComposer` or
    :class:`~seqtasks.tasks.music.EventComposer`).

    Args:
        task: the trained task (its ``network`` and ``artefacts`` are used; it is not modified).
    """

    def __init__(self, task: Any) -> None:
        self.network = task.network
        artefacts = task.artefacts
        if isinstance(self.network, EventNetwork):
            if "vocabulary" not in artefacts:
                raise ValueError(
                    "this model has no event vocabulary (not trained through a music datamodule?)"
                )
            self.codec: EventCodec | PianoRollCodec = EventCodec(artefacts["vocabulary"])
            self.steps_per_quarter = int(artefacts.get("steps_per_quarter", STEPS_PER_QUARTER))
            self.default_steps = 1024
        elif isinstance(self.network, PianoRollNetwork):
            self.steps_per_quarter = int(artefacts.get("steps_per_quarter", 1))
            self.codec = PianoRollCodec(self.steps_per_quarter)
            self.default_steps = 64
        else:
            raise TypeError(f"a {type(task).__name__} does not generate music")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str = "cpu") -> Composer:
        """The composer of a checkpoint (any seqtasks format; loaded ``weights_only``)."""

        return cls(load_task(path, map_location))

    def generate(
        self,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        primer: Sequence[Note] | None = None,
        min_steps: int = 0,
    ) -> list[Note]:
        """A piece (primer included) as notes on the model's grid; ``steps`` new steps at most.

        Args:
            steps: new event tokens or frames at most; None: 1024 tokens or 64 frames.
            temperature: sampling temperature (0: the most probable token; keys above probability 1/2).
            top_k: sample among the k most probable tokens; for a piano roll at most k keys sound at once.
            top_p: nucleus sampling (event models; refused for a piano roll, whose keys are independent).
            seed: the seed of the sampler's own generator (the global random state is left alone).
            primer: notes to continue; the model reads them first, and the piece starts with them.
            min_steps: an event model may not end the piece (``<eos>``) before this many new tokens: a
                small model tends to end a chorale at the first fermata. A piano roll has no end token and
                always samples ``steps`` frames.
        """
        if isinstance(self.codec, PianoRollCodec) and top_p is not None:
            raise ValueError("top_p does not apply to a piano-roll model (independent keys); use top_k")
        check_sampling(temperature, top_k, top_p)
        steps = self.default_steps if steps is None else steps
        generator = torch.Generator().manual_seed(seed)
        with eval_mode(self.network):
            if isinstance(self.codec, PianoRollCodec):
                known = self.codec.primer_roll(primer)
                sampled = self.network.generate(known, steps, temperature, top_k, generator)
                return self.codec.decode(known, sampled)
            codec = self.codec
            # a primer's events end where its last note ends: the model continues from there
            prompt = codec.encode(primer, eos=False) if primer else [codec.bos_id]
            tokens = self.network.generate(
                prompt, steps, temperature, top_k, top_p, generator,
                end=codec.eos_id, min_steps=min_steps, never=(codec.pad_id, codec.bos_id),
            )  # fmt: skip
            return codec.decode(tokens)

    def read_primer(self, path: str | os.PathLike) -> tuple[list[Note], list[str]]:
        """A MIDI file's notes on this model's grid, and the warnings of what reading it changed."""

        return midi_to_notes(path, self.steps_per_quarter)

    @staticmethod
    def title(seed: int, temperature: float) -> str:
        """Title of a sample's MIDI file and PNG: settings only, so equal settings give equal bytes."""
        return f"seqtasks sample (seed {seed}, temperature {temperature})"

    def save(
        self,
        path: str | os.PathLike,
        notes: Sequence[Note],
        tempo: float = 90.0,
        title: str = "",
        primer: Sequence[Note] | None = None,
    ) -> tuple[str, str]:
        """Write ``notes`` as the MIDI file ``path`` and its piano-roll PNG beside it; return both paths.

        A ``primer`` is shaded in the picture.
        """

        primer_steps = max((end for _, _, end in primer), default=0) if primer else 0
        return save_piece(path, notes, self.steps_per_quarter, tempo, title=title, primer_steps=primer_steps)
