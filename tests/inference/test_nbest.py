"""n-best translation: hypotheses ordered by score, each score the length-normalised log-probability of the
hypothesis (recomputed here by teacher forcing), beam 1 is greedy, the first of the n-best is the best; the
command's n-best text and JSONL, the reference check, and the predict stage's translation writer."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from seqtasks.checkpoints import load_task
from seqtasks.cli import main
from seqtasks.inference.translation import Translator
from seqtasks.networks.seq2seq import BOS_INDEX, EOS_INDEX
from seqtasks.nn.modes import eval_mode

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
CKPT = str(LEGACY / "translator.ckpt")


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(LEGACY / "expected.pt", weights_only=True)["translator"]


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.from_checkpoint(CKPT)


def teacher_forced_score(
    translator: Translator, text: str, ids: list[int], limit: int, penalty: float
) -> float:
    """log p(ids (+ </s> when it ended before its length limit) | text) / length ** penalty."""
    source, lengths = translator.codec.source_batch([text])
    targets = [*ids, EOS_INDEX] if len(ids) < limit else ids
    target_in = torch.tensor([[BOS_INDEX, *targets[:-1]]])
    with eval_mode(translator.network), torch.no_grad():
        logits = translator.network(source, lengths, target_in)
    log_probs = torch.log_softmax(logits.double(), dim=-1)[0]
    total = float(log_probs.gather(1, torch.tensor(targets).unsqueeze(1)).sum())
    return total / len(targets) ** penalty if penalty else total


@pytest.mark.parametrize("penalty", [1.0, 0.0, 0.6])
def test_nbest_scores_are_ordered_length_normalised_log_probabilities(
    translator: Translator, expected: dict, penalty: float
) -> None:
    network = translator.network
    for text in expected["texts"]:
        source, lengths = translator.codec.source_batch([text])
        limit = network.max_lengths(lengths.tolist())[0]
        with eval_mode(network):
            found = network.generate_nbest(source, lengths, beam=4, nbest=4, length_penalty=penalty)[0]
        assert len(found) == 4
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(ids) for ids, _ in found}) == 4  # distinct hypotheses
        for ids, score in found:
            assert score == pytest.approx(
                teacher_forced_score(translator, text, ids, limit, penalty), abs=1e-5
            )


def test_beam_one_is_greedy_and_nbest_one_is_the_best(translator: Translator, expected: dict) -> None:
    texts = expected["texts"]
    greedy = translator.translate_nbest(texts, beam=1, nbest=1)
    assert [hyps[0].translation for hyps in greedy] == expected["greedy"]
    best = translator.translate_nbest(texts, beam=3, nbest=1)
    assert [hyps[0].translation for hyps in best] == expected["beam3"] == translator.translate(texts, beam=3)
    three = translator.translate_nbest(texts, beam=3, nbest=3, batch_size=2)
    for hyps, one in zip(three, best, strict=True):
        assert len(hyps) == 3 and hyps[0].translation == one[0].translation
        assert hyps[0].score == pytest.approx(one[0].score, abs=1e-5)  # batching moves only rounding
    records = translator.records(texts, beam=3, nbest=2)
    assert records[0].keys() == {"id", "translation", "score", "nbest"}
    assert [r["id"] for r in records] == list(range(1, len(texts) + 1))
    assert [r["translation"] for r in records] == expected["beam3"]
    assert records[0]["nbest"][0] == {"translation": records[0]["translation"], "score": records[0]["score"]}
    with pytest.raises(ValueError, match=r"nbest must be between 1 and beam \(2\), got nbest=3"):
        translator.translate_nbest(texts, beam=2, nbest=3)


def test_command_nbest_text_and_jsonl(tmp_path: Path, translator: Translator, expected: dict,
                                      capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    source = tmp_path / "en.txt"
    source.write_text("\n".join(expected["texts"][:2]) + "\n", encoding="utf-8")
    main(["translate", "--ckpt", CKPT, "--beam", "3", "--nbest", "3", "--input", str(source), "--quiet"])
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [(i, k) for i in ("1", "2") for k in ("1", "2", "3")]
    want = translator.translate_nbest(expected["texts"][:2], beam=3, nbest=3)
    assert [r[3] for r in rows] == [h.translation for hyps in want for h in hyps]
    assert [float(r[2]) for r in rows] == pytest.approx([h.score for hyps in want for h in hyps], abs=1e-5)
    out = tmp_path / "hi.jsonl"
    main(["translate", "--ckpt", CKPT, "--beam", "3", "--nbest", "2", "--input", str(source),
          "--format", "jsonl", "--output", str(out)])  # fmt: skip
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [1, 2]
    assert [r["translation"] for r in records] == expected["beam3"][:2]
    assert all(len(r["nbest"]) == 2 for r in records)


def test_command_refuses_bad_nbest_and_a_reference_of_another_length(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):  # argparse error: --nbest 2 needs --beam 2
        main(["translate", "--ckpt", CKPT, "--nbest", "2", "a red cat"])
    reference = tmp_path / "ref.txt"
    reference.write_text("one line\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"ref.txt has 1 lines but there are 2 texts"):
        main(["translate", "--ckpt", CKPT, "--reference", str(reference), "a red cat", "a dog"])


@pytest.mark.parametrize("suffix", ["txt", "jsonl"])
def test_predict_stage_writes_translations_in_row_order(tmp_path: Path, expected: dict, suffix: str) -> None:
    task = load_task(CKPT)
    task.predict_beam, task.predict_nbest = 3, 2
    source, lengths = expected["source"], expected["source_lengths"]
    rows = [4, 2, 0, 3, 1]
    batches = [
        {"source": source[rows[i : i + 2]], "source_lengths": lengths[rows[i : i + 2]],
         "indices": torch.tensor(rows[i : i + 2])}
        for i in (0, 2, 4)
    ]  # fmt: skip
    out = tmp_path / f"predictions.{suffix}"
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[task.prediction_writer(str(out))],
    )  # fmt: skip
    trainer.predict(task, dataloaders=DataLoader(batches, batch_size=None), return_predictions=False)
    lines = out.read_text(encoding="utf-8").splitlines()
    if suffix == "txt":
        assert lines == expected["beam3"]
    else:
        records = [json.loads(line) for line in lines]
        assert [r["id"] for r in records] == [1, 2, 3, 4, 5]
        assert [r["translation"] for r in records] == expected["beam3"]
        assert all(len(r["nbest"]) == 2 and r["nbest"][0]["score"] >= r["nbest"][1]["score"] for r in records)


def test_a_file_of_source_sentences_runs_through_the_predict_stage(tmp_path: Path, expected: dict) -> None:
    """A predict file needs no reference column: a .txt line or a JSONL ``en`` field is a sentence."""
    from seqtasks.data.translation import TranslationCodec, TranslationDataModule

    task = load_task(CKPT)
    for name, content in (
        ("en.txt", "\n".join(expected["texts"]) + "\n"),
        ("en.jsonl", "\n".join(json.dumps({"en": t}) for t in expected["texts"]) + "\n"),
    ):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        module = TranslationDataModule("unused", batch_size=2, predict_file=str(path))
        module._codec = TranslationCodec.from_artefacts(task.artefacts)  # the checkpoint's tokenizers
        out = tmp_path / f"{name}.out.txt"
        trainer = pl.Trainer(
            accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[task.prediction_writer(str(out))],
        )  # fmt: skip
        trainer.predict(task, dataloaders=module.predict_dataloader(), return_predictions=False)
        assert out.read_text(encoding="utf-8").splitlines() == expected["greedy"]
    assert module.required_columns() == ["en", "hi"]  # training still needs both sides


def test_command_reads_jsonl_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                        expected: dict) -> None:  # fmt: skip
    import io
    import sys

    lines = [json.dumps({"id": f"s{i}", "text": t}) for i, t in enumerate(expected["texts"][:3])]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    main(["translate", "--ckpt", CKPT, "--input", "-", "--jsonl", "--format", "jsonl"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == ["s0", "s1", "s2"]
    assert [r["translation"] for r in records] == expected["greedy"][:3]
    assert all(len(r["nbest"]) == 1 and r["nbest"][0]["translation"] == r["translation"] for r in records)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a red cat\n\n"))
    with pytest.raises(SystemExit, match="<stdin> line 2 is empty"):
        main(["translate", "--ckpt", CKPT, "--input", "-"])


def test_predict_settings_are_checked() -> None:
    task = load_task(CKPT)
    with pytest.raises(ValueError, match=r"predict_nbest must be between 1 and predict_beam \(2\), got 3"):
        type(task)(lambda *sizes: task.network, 80, 80, predict_beam=2, predict_nbest=3)
