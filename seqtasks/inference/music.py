"""Generating music from a trained piano-roll or event model: notes, and their MIDI file and PNG.

:class:`Composer` holds a music task's network and its codec (built from the checkpoint's artefacts) and
samples pieces with a seeded ``torch.Generator``: the same settings give the same notes, and the same
MIDI bytes. ``seqtasks generate``, the :class:`~seqtasks.tasks.music.MusicSample` callback and a server
all call it::

    composer = Composer.from_checkpoint("best.ckpt")
    notes = composer.generate(steps=300, temperature=0.9, top_p=0.9, seed=1, min_steps=200)
    midi_path, png_path = composer.save("piece.mid", notes, title=composer.title(1, 0.9))
    wav = composer.render_wav(notes, "piece.wav")       # WAV (sine tones; fluidsynth with soundfont=...)

The predict stage (``seqtasks predict`` on a music recipe) writes one ``sample-<seed>.mid`` (+ ``.png``) per
seed through :class:`MidiWriter`.
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Sequence
from typing import Any

import torch

from seqtasks.checkpoints import load_trained, task_kind
from seqtasks.data.errors import DataError
from seqtasks.music.events import STEPS_PER_QUARTER, EventCodec
from seqtasks.music.midi import midi_to_notes, notes_to_midi, save_piece
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
            raise TypeError(f"a {task_kind(task)} does not generate music")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str = "cpu") -> Composer:
        """The composer of a checkpoint (any seqtasks format; loaded ``weights_only``)."""

        return cls(load_trained(path, map_location))

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
        """A MIDI file's notes on this model's grid, and the warnings of what reading it changed.

        A primer with nothing to continue (no notes, or drums only: drum notes are left out) is refused
        rather than silently generating from nothing; an unreadable file names itself.

        Raises:
            DataError: the file is missing or not a readable MIDI file, or no note of it is usable.
        """
        notes, warnings = midi_to_notes(path, self.steps_per_quarter)
        if not notes:
            dropped = f" ({'; '.join(warnings)})" if warnings else ""
            raise DataError(
                os.fspath(path), f"the primer holds no notes to continue{dropped}; give a primer with notes"
            )
        return notes, warnings

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

    def midi_bytes(self, notes: Sequence[Note], tempo: float = 90.0, title: str = "") -> bytes:
        """The MIDI file of ``notes`` as bytes (the same bytes :meth:`save` writes)."""
        return notes_to_midi(notes, self.steps_per_quarter, tempo_bpm=tempo, title=title or None)

    def png_bytes(self, notes: Sequence[Note], title: str = "", primer_steps: int = 0) -> bytes:
        """The piano-roll picture of ``notes`` as PNG bytes (the picture :meth:`save` writes)."""
        from seqtasks.music.plot import piano_roll_figure

        fig = piano_roll_figure(notes, self.steps_per_quarter, title=title, primer_steps=primer_steps)
        import matplotlib.pyplot as plt  # after the figure: piano_roll_figure selects the Agg backend

        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png", dpi=100)
        finally:
            plt.close(fig)
        return buffer.getvalue()

    def render_wav(
        self,
        notes: Sequence[Note],
        path: str | os.PathLike | None = None,
        sample_rate: int = 22050,
        tempo: float = 90.0,
        soundfont: str | os.PathLike | None = None,
    ) -> bytes:
        """``notes`` played as a mono 16-bit WAV: its bytes, also written to ``path`` when given.

        The MIDI file of :meth:`midi_bytes` is rendered by pretty_midi's synthesizer (a sine wave per
        note: no SoundFont needed), or by fluidsynth with ``soundfont`` (a ``.sf2`` file; needs the
        ``pyfluidsynth`` package), normalised to 0.9 of full scale. An empty piece gives a short silence.
        """
        return render_wav(self.midi_bytes(notes, tempo), path, sample_rate, soundfont)


def render_wav(
    midi: bytes,
    path: str | os.PathLike | None = None,
    sample_rate: int = 22050,
    soundfont: str | os.PathLike | None = None,
) -> bytes:
    """A MIDI file's bytes → mono 16-bit PCM WAV bytes (pretty_midi's sine synthesizer, or fluidsynth).

    Raises:
        ValueError: a sample rate below 1 kHz, a SoundFont that is not a file, or fluidsynth missing.
    """
    import numpy as np
    import pretty_midi

    if sample_rate < 1000:
        raise ValueError(f"sample_rate must be at least 1000 Hz, got {sample_rate}")
    piece = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    if soundfont is not None:
        if not os.path.isfile(soundfont):
            raise ValueError(f"{soundfont}: no such SoundFont file")
        try:
            audio = piece.fluidsynth(fs=sample_rate, sf2_path=os.fspath(soundfont))
        except ImportError as error:
            raise ValueError(
                f"rendering with a SoundFont needs fluidsynth and the pyfluidsynth package ({error}); "
                "leave the SoundFont out for the built-in sine synthesizer"
            ) from None
    else:
        audio = piece.synthesize(fs=sample_rate)
    if audio.size == 0:
        audio = np.zeros(sample_rate // 10)
    peak = float(np.abs(audio).max())
    if peak > 0:
        audio = audio * (0.9 / peak)
    pcm = (audio * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    data = buffer.getvalue()
    if path is not None:
        with open(path, "wb") as handle:
            handle.write(data)
    return data
