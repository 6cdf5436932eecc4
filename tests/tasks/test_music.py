"""The music tasks: recipes build; fit → checkpoint (+ sample, logged figure) → ``seqtasks generate`` in a
fresh process with no data directory; the generate command's help and errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest
import torch
from fixtures.music import make_tiny_rolls

from seqtasks.checkpoints import load_task
from seqtasks.cli import main
from seqtasks.inference.music import Composer
from seqtasks.music.midi import notes_to_midi
from seqtasks.networks.music import PianoRollNetwork
from seqtasks.tasks.music import EventComposer, PianoRollComposer
from seqtasks.training import run_lightning

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when pytest's own arguments sit in sys.argv beside ``args``."""
    monkeypatch.setattr(sys, "argv", ["seqtasks"])


def midi_notes(path: Path, steps_per_quarter: int, bpm: float = 90.0) -> list[tuple[int, int, int]]:
    midi = pretty_midi.PrettyMIDI(io.BytesIO(path.read_bytes()))
    step = 60.0 / bpm / steps_per_quarter
    notes = [(n.pitch, round(n.start / step), round(n.end / step)) for i in midi.instruments for n in i.notes]
    return sorted(notes, key=lambda n: (n[1], n[0], n[2]))


@pytest.fixture
def tiny_rolls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_tiny_rolls(tmp_path, monkeypatch)


@pytest.mark.parametrize("recipe", ["music-jsb", "music-jsb-gru", "music-jsb-rnn"])
def test_piano_roll_recipes_build(recipe: str, tiny_rolls: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_lightning(["--config", str(ROOT / "recipes" / f"{recipe}.yaml")], run=False)
    assert isinstance(cli.model, PianoRollComposer) and not cli.model.network.encoder.bidirectional
    assert isinstance(cli.model.network, PianoRollNetwork)
    encoder = {"music-jsb": "LSTMEncoder", "music-jsb-gru": "GRUEncoder", "music-jsb-rnn": "RNNEncoder"}[
        recipe
    ]
    assert type(cli.model.network.encoder).__name__ == encoder
    lr = cli.model.optimizer(cli.model.parameters()).param_groups[0]["lr"]
    assert lr == (0.001 if recipe == "music-jsb-rnn" else 0.003)


def test_bach_fit_then_generate_in_a_fresh_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQTASKS_DATA_DIR", raising=False)
    main(
        ["fit", "--config", str(ROOT / "recipes" / "music-bach.yaml"), *TINY,
         "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "run"),
         "--data.init_args.max_pieces", "4", "--data.init_args.validation_fraction", "0.25",
         "--data.init_args.test_fraction", "0.25", "--data.init_args.transpositions", "0",
         "--model.init_args.network.init_args.encoder.init_args.hidden_size", "32"]
    )  # fmt: skip
    # the recipe's MusicSample callback left a sample beside the checkpoints
    assert (tmp_path / "run" / "samples" / "sample.mid").stat().st_size > 20
    assert (tmp_path / "run" / "samples" / "sample.png").exists()
    # ... and logged its piano roll the way every task logs its pictures (here: no logger, a PNG)
    assert list((tmp_path / "run" / "figures").glob("sample_piano_roll_epoch*.png"))
    assert list((tmp_path / "run" / "figures").glob("val_sample_epoch000.png"))  # the validation sketch
    ckpt = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))

    # generate in a fresh process: no data directory, an empty cache, only the checkpoint
    env = {k: v for k, v in os.environ.items() if k != "SEQTASKS_DATA_DIR"}
    env["SEQTASKS_CACHE_DIR"] = str(tmp_path / "fresh-cache")
    args = [
        "--ckpt",
        str(ckpt),
        "--temperature",
        "0.9",
        "--top-k",
        "20",
        "--steps",
        "300",
        "--min-steps",
        "200",
    ]
    command = [sys.executable, "-m", "seqtasks.cli", "generate", *args, "--out", "a.mid", "--seed", "1"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first = tmp_path / "a.mid"
    assert first.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # the same seed gives the same bytes (here across processes), another seed another piece
    main(["generate", *args, "--out", str(tmp_path / "b.mid"), "--seed", "1"])
    main(["generate", *args, "--out", str(tmp_path / "c.mid"), "--seed", "2"])
    assert first.read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert first.read_bytes() != (tmp_path / "c.mid").read_bytes()
    # an independent parser reads back exactly the notes the model samples with that seed
    assert isinstance(load_task(str(ckpt)), EventComposer)
    composer = Composer.from_checkpoint(ckpt)
    notes = composer.generate(300, 0.9, 20, None, 1, min_steps=200)
    assert len(notes) > 5
    assert midi_notes(first, composer.steps_per_quarter) == notes


def test_piano_roll_fit_then_generate_with_primer(tiny_rolls: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(
        ["fit", "--config", str(ROOT / "recipes" / "music-jsb-gru.yaml"), *TINY,
         "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "run"),
         "--model.init_args.network.init_args.encoder.init_args.hidden_size", "16"]
    )  # fmt: skip
    ckpt = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    primer = tmp_path / "primer.mid"
    primer.write_bytes(notes_to_midi([(60, 0, 2), (64, 0, 1), (67, 1, 3)], steps_per_quarter=1))
    out = tmp_path / "piece.mid"
    main(["generate", "--ckpt", str(ckpt), "--out", str(out), "--primer", str(primer), "--seed", "3",
          "--steps", "12", "--top-k", "6"])  # fmt: skip
    notes = midi_notes(out, steps_per_quarter=1)
    assert {(60, 0, 2), (64, 0, 1), (67, 1, 3)} <= set(notes)  # the primer, then 12 sampled frames
    assert max(end for _, _, end in notes) <= 3 + 12
    assert out.with_suffix(".png").exists()


def test_prepare_lists_the_pieces_that_could_not_be_converted(tmp_path: Path, monkeypatch, capsys) -> None:
    import seqtasks.data.music as music

    monkeypatch.chdir(tmp_path)
    listing = [(1, "bach/bwv66.6"), (2, "bach/bwv269"), (3, "bach/bwv66.6"), (4, "bach/bwv347")]
    monkeypatch.setattr(music, "bach_chorale_names", lambda: listing)
    main(["prepare", "--config", str(ROOT / "recipes" / "music-bach.yaml"), "--trainer.logger", "false"])
    out = capsys.readouterr().out
    assert "skipped riemenschneider 003 (bach/bwv66.6): same file as riemenschneider 001" in out
    assert "pieces: 3 entries" in out


def test_generate_refuses_bad_settings_and_files_without_a_traceback(tmp_path: Path) -> None:
    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
    with pytest.raises(SystemExit, match="seqtasks generate: top_p does not apply"):
        main(["generate", "--ckpt", str(legacy / "pianoroll.ckpt"), "--out", str(tmp_path / "x.mid"),
              "--top-p", "0.9"])  # fmt: skip
    with pytest.raises(SystemExit, match=r"seqtasks generate: .*no such checkpoint"):
        main(["generate", "--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x.mid")])


def test_generate_help_lists_every_option_with_its_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # as wrapped for any terminal width
    for option in ("--ckpt", "--out", "--primer", "--temperature", "--top-k", "--top-p", "--seed", "--steps",
                   "--min-steps", "--tempo"):  # fmt: skip
        assert option in out
    assert "(default: 90.0)" in out and "(default: 0)" in out


def test_fine_tuning_from_a_legacy_checkpoint_copies_every_tensor() -> None:
    from seqtasks.encoders import LSTMEncoder

    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "pianoroll.ckpt"

    def network(keys: int) -> PianoRollNetwork:
        return PianoRollNetwork(keys, lambda n: LSTMEncoder(n, hidden_size=16, bidirectional=False))

    task = PianoRollComposer(network, init_from=str(legacy))
    task.load_pretrained(str(legacy))
    source = load_task(str(legacy)).state_dict()
    assert source.keys() == task.state_dict().keys()
    assert all(torch.equal(task.state_dict()[k], v) for k, v in source.items())
