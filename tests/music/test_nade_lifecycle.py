"""The RNN-NADE recipe end to end on tiny rolls: fit (W&B offline) → sample media logged → checkpoint →
``seqtasks generate --wav`` from nothing and from a primer, seeded, the WAV read back."""

from __future__ import annotations

import io
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from fixtures.music import make_tiny_rolls

from seqtasks.checkpoints import load_task
from seqtasks.cli import main
from seqtasks.music.midi import midi_to_notes, notes_to_midi
from seqtasks.networks.music import PianoRollNADENetwork
from seqtasks.tasks.music import PianoRollComposer

ROOT = Path(__file__).resolve().parents[2]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(path.read_bytes())) as handle:
        assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2"), handle.getframerate()


def test_nade_fit_logs_media_then_generate_writes_midi_png_and_wav(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tiny_rolls(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    wandb.finish()
    wandb.teardown()  # wandb's process-wide settings may hold another test's WANDB_MODE=disabled
    main(
        ["fit", "--config", str(ROOT / "recipes" / "music-jsb-nade.yaml"),
         "--trainer.logger.init_args.save_dir", str(tmp_path / "run"),
         "--trainer.logger.init_args.offline", "true",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.max_epochs", "1",
         "--model.init_args.network.init_args.encoder.init_args.hidden_size", "16",
         "--model.init_args.network.init_args.nade_hidden", "8"]
    )  # fmt: skip
    samples = next((tmp_path / "run").rglob("samples"))
    assert (samples / "sample.mid").exists() and (samples / "sample.png").read_bytes()[:4] == b"\x89PNG"
    audio, rate = read_wav(samples / "sample.wav")
    assert rate == 16000 and np.abs(audio).max() > 10_000
    # the W&B run (offline) holds the sample's picture and its audio as media
    media = [p.suffix for p in (tmp_path / "run").rglob("media/**/*") if p.is_file()]
    assert ".png" in media and ".wav" in media, media
    wandb.finish()  # the fit's run (Lightning leaves it open), then this process's W&B service: later
    wandb.teardown()  # tests must neither log into the run nor hand the service to their subprocesses
    ckpt = next((tmp_path / "run").rglob("best-*.ckpt"))
    task = load_task(str(ckpt))
    assert isinstance(task, PianoRollComposer) and isinstance(task.network, PianoRollNADENetwork)

    # one-to-many from nothing: 16 frames, seeded → the same MIDI bytes; a WAV of the piece's length
    args = [
        "generate",
        "--ckpt",
        str(ckpt),
        "--steps",
        "16",
        "--tempo",
        "120",
        "--wav",
        "--sample-rate",
        "8000",
    ]
    main([*args, "--out", str(tmp_path / "a.mid"), "--seed", "4"])
    main([*args, "--out", str(tmp_path / "b.mid"), "--seed", "4"])
    main([*args, "--out", str(tmp_path / "c.mid"), "--seed", "5", "--temperature", "0.5"])
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert (tmp_path / "a.mid").read_bytes() != (tmp_path / "c.mid").read_bytes()
    notes, _ = midi_to_notes(tmp_path / "a.mid", steps_per_quarter=1)
    audio, rate = read_wav(tmp_path / "a.wav")
    last = max(end for _, _, end in notes)  # quarter notes at 120 bpm: 0.5 s each
    assert rate == 8000 and last * 0.5 <= len(audio) / rate <= last * 0.5 + 1.1
    assert np.abs(audio).max() > 10_000
    # ... or from a primer, which the piece starts with
    primer = tmp_path / "primer.mid"
    primer.write_bytes(notes_to_midi([(60, 0, 2), (64, 0, 2), (67, 0, 2)], steps_per_quarter=1))
    main([*args, "--out", str(tmp_path / "p.mid"), "--primer", str(primer), "--seed", "4"])
    primed, _ = midi_to_notes(tmp_path / "p.mid", steps_per_quarter=1)
    # (a primer note the model holds on into frame 2 is one longer note)
    assert all(any(p == pitch and s == 0 and e >= 2 for p, s, e in primed) for pitch in (60, 64, 67))
    assert max(end for _, _, end in primed) <= 2 + 16


def test_generate_with_a_missing_soundfont_is_refused_naming_it(tmp_path: Path) -> None:
    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "pianoroll.ckpt"
    with pytest.raises(SystemExit, match=r"--wav: .*nowhere.sf2: no such SoundFont file"):
        main(["generate", "--ckpt", str(legacy), "--out", str(tmp_path / "x.mid"), "--steps", "4", "--wav",
              "--soundfont", str(tmp_path / "nowhere.sf2")])  # fmt: skip
