"""Sample a piece from a music checkpoint: a MIDI file, its piano-roll PNG beside it, and (``--wav``) audio.

seqtasks generate --ckpt best.ckpt --out piece.mid --seed 1 --top-p 0.9 --min-steps 300 --wav
The same checkpoint, settings and seed give the same file. Prints the MIDI path, the note count, the PNG path
(and the WAV path). One-to-many: from nothing (no ``--primer``) a whole piece; with ``--primer`` a
continuation of the primer's notes, which the piece starts with.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a PianoRollComposer or EventComposer checkpoint")
    parser.add_argument("--out", required=True, help="the MIDI file to write (the PNG gets the same name)")
    parser.add_argument("--primer", help="a MIDI file to continue")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: greedy)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens/keys")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling (event models)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    parser.add_argument(
        "--steps", type=int, default=None, help="new tokens (event model) or frames at most; None: 1024 or 64"
    )
    parser.add_argument("--min-steps", type=int, default=0, help="event models: no end before N new tokens")
    parser.add_argument("--tempo", type=float, default=90.0, help="tempo of the MIDI file, quarter notes/min")
    parser.add_argument("--wav", action="store_true", help="also write the piece as audio (OUT with .wav)")
    parser.add_argument("--sample-rate", type=int, default=22050, help="sample rate of the WAV file (Hz)")
    parser.add_argument(
        "--soundfont", default=None, help="render the WAV with fluidsynth and this .sf2 (default: sine tones)"
    )


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.checkpoints import CheckpointError
    from seqtasks.inference.music import Composer

    try:
        composer = Composer.from_checkpoint(options.ckpt)
    except CheckpointError as error:
        raise SystemExit(f"seqtasks generate: {error}") from None
    except TypeError as error:  # a checkpoint of a task that does not make music
        raise SystemExit(f"seqtasks generate: {options.ckpt}: {error}") from None
    primer = None
    if options.primer:
        try:  # the error names the file; a primer with no usable notes is refused (see read_primer)
            primer, warnings = composer.read_primer(options.primer)
        except (OSError, ValueError) as error:
            raise SystemExit(f"seqtasks generate: --primer: {error}") from None
        for warning in warnings:
            print(f"primer {options.primer}: {warning}", file=sys.stderr)
    sampling = {"temperature": options.temperature, "top_k": options.top_k, "top_p": options.top_p}
    try:
        notes = composer.generate(
            options.steps, **sampling, seed=options.seed, primer=primer, min_steps=options.min_steps
        )
    except ValueError as error:
        raise SystemExit(f"seqtasks generate: {error}") from None
    title = composer.title(options.seed, options.temperature)
    midi, png = composer.save(options.out, notes, options.tempo, title=title, primer=primer)
    print(f"{midi}\t{len(notes)} notes\n{png}")
    if options.wav:
        wav = os.path.splitext(midi)[0] + ".wav"
        try:
            composer.render_wav(notes, wav, options.sample_rate, options.tempo, options.soundfont)
        except ValueError as error:
            raise SystemExit(f"seqtasks generate: --wav: {error}") from None
        print(wav)
