"""Audio, MIDI/PNG bytes and the predict stage of the music inference API, on the tiny legacy checkpoints."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest

from seqtasks.checkpoints import load_task
from seqtasks.data.music import PianoRollDataModule
from seqtasks.inference.music import Composer
from seqtasks.music.midi import midi_to_notes

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as handle:
        assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
        frames = handle.readframes(handle.getnframes())
        return np.frombuffer(frames, dtype="<i2"), handle.getframerate()


def test_render_wav_is_a_non_silent_wave_as_long_as_the_notes(tmp_path: Path) -> None:
    composer = Composer.from_checkpoint(LEGACY / "events.ckpt")
    # two quarter notes then a half note at 90 bpm on the 4-steps-per-quarter grid: 4 quarters = 2.667 s
    notes = [(60, 0, 4), (64, 4, 8), (67, 8, 16)]
    path = tmp_path / "piece.wav"
    data = composer.render_wav(notes, path, sample_rate=16000)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert path.read_bytes() == data
    samples, rate = read_wav(data)
    assert rate == 16000
    assert np.abs(samples).max() > 10_000  # normalised to 0.9 of full scale, not silence
    expected = 4 * 60 / 90
    # pretty_midi adds a short release tail after the last note
    assert expected <= len(samples) / rate <= expected + 1.1
    # the first second sounds (the first note), not only the tail
    assert np.abs(samples[: rate // 2]).max() > 1_000


def test_render_wav_of_an_empty_piece_is_a_short_silence() -> None:
    composer = Composer.from_checkpoint(LEGACY / "pianoroll.ckpt")
    samples, rate = read_wav(composer.render_wav([], sample_rate=8000))
    assert 0 < len(samples) <= rate and not samples.any()


def test_midi_and_png_bytes_are_what_save_writes(tmp_path: Path) -> None:
    composer = Composer.from_checkpoint(LEGACY / "events.ckpt")
    notes = composer.generate(64, seed=3, min_steps=10)
    midi_path, _png_path = composer.save(tmp_path / "a.mid", notes, title="t")
    assert composer.midi_bytes(notes, title="t") == Path(midi_path).read_bytes()
    png = composer.png_bytes(notes, title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert midi_to_notes(composer.midi_bytes(notes), composer.steps_per_quarter)[0] == notes


@pytest.mark.parametrize("name", ["pianoroll", "events"])
def test_predict_stage_writes_one_midi_file_per_seed(tmp_path: Path, name: str) -> None:
    task = load_task(LEGACY / f"{name}.ckpt")
    data = PianoRollDataModule("unused", batch_size=2, predict_samples=3, predict_seed=5, predict_steps=16)
    out = tmp_path / "samples"
    writer = task.prediction_writer(str(out))
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    predictions = trainer.predict(task, dataloaders=data.predict_dataloader())
    assert sorted(p.name for p in out.iterdir()) == [
        f"sample-{seed}.{ext}" for seed in (5, 6, 7) for ext in ("mid", "png")
    ]
    composer = Composer(task)
    for batch in predictions:
        for seed, notes in batch:
            # the file holds the notes the inference API samples for that seed
            assert notes == composer.generate(16, seed=seed)
            read, _ = midi_to_notes(out / f"sample-{seed}.mid", composer.steps_per_quarter)
            assert read == notes


def test_predict_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="predict_samples"):
        PianoRollDataModule("unused", predict_samples=0)
    with pytest.raises(ValueError, match="predict_steps"):
        PianoRollDataModule("unused", predict_steps=0)
