"""A folder of the user's own MIDI files → piano rolls: every file and track dropped or changed is reported.

The folder mixes the MIDI files music21 ships (Mozart's K. 525 among them, not only Bach) with files
broken on purpose, generated here: garbage, truncated, no notes, drums only, off the grid, outside the 88
keys, a program the track rule leaves out, a duplicate.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import mido
import pytest
import torch

from seqtasks.data.errors import DataError
from seqtasks.data.midi_folder import MidiFolderDataModule
from seqtasks.music.collection import ReadSettings, read_folder, read_piece, summarise


def music21_midi_files() -> list[Path]:
    import music21

    root = Path(music21.__file__).parent
    return sorted(root.glob("midi/testPrimitive/*.mid")) + sorted(root.glob("omr/*.mid"))


def write_midi(path: Path, tracks: list[list[tuple]], ticks_per_beat: int = 480) -> None:
    """Tracks of ``(channel, pitch, start_tick, end_tick)`` notes, or ``("program", channel, program)``."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        timed = []
        for event in events:
            if event[0] == "program":
                timed.append((0, 0, mido.Message("program_change", channel=event[1], program=event[2])))
                continue
            channel, pitch, start, end = event
            timed.append((start, 2, mido.Message("note_on", channel=channel, note=pitch, velocity=80)))
            timed.append((end, 1, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
        timed.sort(key=lambda e: e[:2])
        now = 0
        for tick, _, message in timed:
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))


def chord_melody(offset: int = 0) -> list[tuple]:
    return [(0, 60 + offset + (i % 5), i * 480, (i + 1) * 480) for i in range(8)] + [
        (0, 48, 0, 1920),
        (0, 52, 1920, 3840),
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "midi"
    (root / "broken").mkdir(parents=True)
    for path in music21_midi_files():
        shutil.copy(path, root / path.name)
    write_midi(root / "good_a.mid", [chord_melody()])
    write_midi(root / "good_b.mid", [chord_melody(2)])
    shutil.copy(root / "good_a.mid", root / "good_a_copy.mid")  # a duplicate
    (root / "broken" / "garbage.mid").write_bytes(b"this is not a MIDI file at all")
    (root / "broken" / "truncated.mid").write_bytes((root / "good_a.mid").read_bytes()[:30])
    write_midi(root / "broken" / "silent.mid", [[]])  # no notes
    write_midi(root / "broken" / "drums.mid", [[(9, 36, i * 240, i * 240 + 120) for i in range(8)]])
    # notes a triplet apart (160 ticks) on a sixteenth grid (120 ticks): 1/3 of a step off
    write_midi(root / "broken" / "triplets.mid", [[(0, 67, i * 160, (i + 1) * 160) for i in range(6)]])
    write_midi(root / "broken" / "range.mid", [[(0, 10, 0, 480), (0, 120, 0, 480), (0, 60, 0, 480)]])
    # a piano track with a drum note inside, and a track of program 40 (violin)
    write_midi(
        root / "broken" / "mixed.mid",
        [
            [("program", 0, 0), *chord_melody(4), (9, 38, 0, 120)],
            [("program", 1, 40), (1, 76, 0, 960)],
        ],
    )
    return root


def by_file(report: list[dict]) -> dict[str, list[tuple[str, str, int]]]:
    out: dict[str, list[tuple[str, str, int]]] = {}
    for entry in report:
        out.setdefault(entry["file"], []).append((entry["action"], entry["reason"], entry["count"]))
    return out


def test_every_dropped_or_changed_file_and_track_is_reported_with_its_reason(folder: Path) -> None:
    pieces, report = read_folder(folder, ReadSettings(steps_per_quarter=4, programs=(0,)))
    files = by_file(report)
    assert [a for a, *_ in files["broken/garbage.mid"]] == ["dropped"]
    assert files["broken/garbage.mid"][0][1] == files["broken/truncated.mid"][0][1] == "unreadable"
    assert files["broken/silent.mid"] == [("dropped", "no notes", 1)]
    assert ("dropped", "drums only", 1) in files["broken/drums.mid"]
    assert files["broken/triplets.mid"] == [("changed", "off-grid", 6)]  # each note has an end off the grid
    assert files["broken/range.mid"] == [("changed", "out of range", 2)]
    assert files["good_a_copy.mid"] == [("dropped", "duplicate", 1)]
    assert ("changed", "drums", 1) in files["broken/mixed.mid"]
    assert ("dropped", "program not selected", 1) in files["broken/mixed.mid"]
    assert "good_a.mid" not in files and "good_b.mid" not in files  # on the grid, in range: untouched
    kept = {p["file"] for p in pieces}
    assert {"good_a.mid", "good_b.mid", "broken/range.mid", "broken/mixed.mid"} <= kept
    # Mozart's K. 525 (music21's OMR test file) is for strings (program 48): the piano-only rule drops
    # each of its five tracks, then the file, each with its reason
    mozart = files["k525short.mid"]
    assert mozart.count(("dropped", "program not selected", 45)) == 1 and len(mozart) == 6
    assert mozart[-1] == ("dropped", "no notes", 1)
    assert not kept & {"good_a_copy.mid", "broken/garbage.mid", "broken/silent.mid", "broken/drums.mid"}
    # nothing is lost: every file is either a piece or dropped (the file itself, not a track) with a reason
    dropped = [e["file"] for e in report if e["action"] == "dropped" and "track" not in e]
    assert len(dropped) == len(set(dropped)) and not kept & set(dropped)
    assert len(kept) + len(dropped) == len(list(folder.rglob("*.mid")))
    music21_names = {p.name for p in music21_midi_files()}  # 21 test files + 2 of Mozart's K. 525
    assert len(music21_names) == 23 and len(kept & music21_names) >= 15
    counts = summarise(report)
    assert counts["dropped file/unreadable"] == 2 and counts["dropped file/duplicate"] >= 1
    assert counts["changed notes/out of range"] == 2
    # the violin track kept when the track rule keeps every program; the mixed file's piano notes stay
    notes = read_piece(folder / "broken" / "mixed.mid", ReadSettings(4)).notes
    assert notes is not None and 76 in {p for p, _, _ in notes} and 38 not in {p for p, _, _ in notes}


def test_policies_change_what_is_kept(folder: Path) -> None:
    strict = ReadSettings(steps_per_quarter=4, off_grid="drop")
    assert read_piece(folder / "broken" / "triplets.mid", strict).notes is None
    octave = read_piece(folder / "broken" / "range.mid", ReadSettings(4, out_of_range="octave"))
    assert octave.notes is not None and {p for p, _, _ in octave.notes} == {22, 60, 108}
    drums = read_piece(folder / "broken" / "drums.mid", ReadSettings(4, drums="keep"))
    assert drums.notes is not None and drums.entries == []
    with pytest.raises(ValueError, match="drums must be one of"):
        ReadSettings(drums="sometimes")


def test_datamodule_splits_by_file_reproducibly_and_logs_the_report(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path / "cache"))
    logged: dict = {}
    logger = SimpleNamespace(
        log_metrics=lambda metrics, step: logged.update(metrics),
        log_table=lambda key, columns, data: logged.update({key: (columns, data)}),
    )
    module = MidiFolderDataModule(str(folder), validation_fraction=0.2, test_fraction=0.2, batch_size=4)
    module.trainer = SimpleNamespace(logger=logger, global_rank=0)
    module.setup("fit")
    module.setup("test")
    splits = module.prepared["splits"]
    names = [p["file"] for p in module.prepared["pieces"]]
    assert sorted(i for s in splits.values() for i in s) == list(range(len(names)))
    again = MidiFolderDataModule(str(folder), validation_fraction=0.2, test_fraction=0.2)
    assert again.split_of_files(names) == splits
    assert (
        logged["data/dropped file/unreadable"] == 2.0 and logged["data/files"] == 33.0
    )  # 23 of music21, 3 good, 7 broken
    columns, rows = logged["data/report"]
    assert len(rows) == len(module.report) and "reason" in columns
    batch = next(iter(module.train_dataloader()))
    assert batch["rolls"].shape[-1] == 88 and batch["rolls"].dtype == torch.float32
    assert int(batch["lengths"].max()) == batch["rolls"].size(1)


def test_a_folder_with_too_few_usable_files_is_refused_naming_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEQTASKS_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "few"
    root.mkdir()
    (root / "bad.mid").write_bytes(b"MThd garbage")
    write_midi(root / "one.mid", [chord_melody()])
    with pytest.raises(DataError, match=r"only 1 usable MIDI file.*bad.mid: unreadable"):
        MidiFolderDataModule(str(root)).setup("fit")
