"""The translation task: fit on tiny data → checkpoint → ``seqtasks translate`` in a fresh process; the test
stage's gathering across ranks; attention-map figures; the logged corpus scores; format-1 upgrades.

The fresh process has no data directory and no network; it must translate from the checkpoint alone and
give what the trained model gives in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from fixtures.translation import make_tiny_parallel

from seqtasks.checkpoints import load_task, read_checkpoint, upgrade_checkpoint
from seqtasks.inference.translation import Translator
from seqtasks.training import run_lightning

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "translator.ckpt"


def tiny_config(root: Path, dataset: Path) -> dict:
    return {
        "seed_everything": 42,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 6,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(root),
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True},
                }
            ],
        },
        "model": {
            "class_path": "seqtasks.tasks.translation.Seq2SeqTranslator",
            "init_args": {
                "network": {
                    "class_path": "seqtasks.networks.seq2seq.Seq2SeqNetwork",
                    "init_args": {
                        "attention": "general",
                        "embedding_dim": 32,
                        "attentional_size": 48,
                        "dropout": 0.0,
                        "embedding_dropout": 0.0,
                        "scheduled_sampling": 0.2,
                        "encoder": {
                            "class_path": "seqtasks.encoders.GRUEncoder",
                            "init_args": {"hidden_size": 24},
                        },
                        "decoder": {
                            "class_path": "seqtasks.encoders.GRUEncoder",
                            "init_args": {"hidden_size": 48, "bidirectional": False},
                        },
                    },
                },
                "label_smoothing": 0.0,
                "val_bleu_sentences": 16,
                "attention_maps": 2,
                "optimizer": {
                    "class_path": "torch.optim.AdamW",
                    "init_args": {"lr": 0.02, "weight_decay": 0.0},
                },
            },
        },
        "data": {
            "class_path": "seqtasks.data.translation.TranslationDataModule",
            "init_args": {
                "dataset": str(dataset),
                "subword_vocab_size": 80,
                "min_frequency": 1,
                "batch_size": 16,
            },
        },
    }


@pytest.mark.slow
def test_fit_then_translate_from_checkpoint_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    dataset = make_tiny_parallel(tmp_path / "mt")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "run", dataset)))
    cli = run_lightning(["fit", "--config", str(config), "--test_after_fit", "false"])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.exists()
    figures = list((tmp_path / "run").rglob("val_attention_0_epoch*.png"))
    assert figures, "attention maps are logged as images"
    assert float(cli.trainer.callback_metrics["val/loss"]) < 1.5, "the tiny task should be learnt"

    raw = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain data only
    assert isinstance(raw["seqtasks"]["artefacts"]["target_tokenizer"], str)
    translator = Translator.from_checkpoint(ckpt)
    texts = ["a red cat", "the dog is black."]
    expected_greedy = translator.translate(texts)
    expected_beam = translator.translate(texts, beam=3)
    assert Translator.from_task(cli.model).translate(texts) == expected_greedy  # the trained model in memory
    assert "लाल बिल्ली" in expected_greedy[0]

    env = {k: v for k, v in os.environ.items() if k != "SEQTASKS_DATA_DIR"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "seqtasks.cli", "translate", "--ckpt", str(ckpt)]
    out = subprocess.run(command + texts, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == expected_greedy
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    target = tmp_path / "out.txt"
    args = ["--beam", "3", "--input", str(source), "--output", str(target), "--reference", str(source)]
    out = subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert target.read_text(encoding="utf-8").splitlines() == expected_beam
    assert "nrefs:1" in out.stderr and "BLEU" in out.stderr  # the sacreBLEU signature


def test_gathered_test_corpus_counts_each_sentence_once_in_row_order() -> None:
    """Ranks' shares, with the distributed sampler's padding repeating row 0, become the test set once."""
    from seqtasks.tasks.translation import gathered_corpus

    rank0 = [(2, "h2", "r2"), (0, "h0", "r0")]
    rank1 = [(1, "h1", "r1"), (0, "h0", "r0")]  # padding: row 0 again
    assert gathered_corpus(rank0 + rank1) == (["h0", "h1", "h2"], ["r0", "r1", "r2"])


def test_devanagari_labels_are_transliterated_when_no_font_draws_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seqtasks import plots
    from seqtasks.attention_maps import attention_figure

    assert plots.transliterate_devanagari("आप कैसे हैं?") == "āpa kaise haiṁ?"
    assert plots.transliterate_devanagari("मैं तुमसे प्यार करती हूँ।") == "maiṁ tumase pyāra karatī hūm̐."
    assert (
        plots.transliterate_devanagari("\u095b\u093f\u0902\u0926\u0917\u0940 ९") == "ziṁdagī 9"
    )  # ज़ precomposed
    assert plots.transliterate_devanagari("▁car </s>") == "▁car </s>"

    monkeypatch.setattr(plots, "font_has", lambda char: False)
    figure = attention_figure(torch.full((2, 2), 0.5), ["▁a", "▁car"], ["▁कार", "</s>"])
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["▁kāra", "</s>"]
    assert axes.get_ylabel() == "output (transliterated)" and axes.get_xlabel() == "source"
    monkeypatch.setattr(plots, "font_has", lambda char: True)
    assert plots.plot_label("▁कार") == "▁कार"


def test_logged_corpus_scores_agree_with_sacrebleu() -> None:
    """What W&B shows (val/bleu, val/chrf) is on sacreBLEU's scale and is its BLEU and chrF (not chrF++)."""
    from sacrebleu.metrics import BLEU, CHRF

    from seqtasks.metrics import CorpusBLEU, CorpusChrF

    refs = ["एक आदमी सड़क पर चल रहा है", "लाल रंग की कार", "दो कुत्ते घास पर खेल रहे हैं", "a red bus on the road"]
    hyps = ["एक आदमी सड़क पर है", "लाल कार", "दो कुत्ते घास में खेल रहे", "a red bus on a road"]
    bleu, chrf = CorpusBLEU(), CorpusChrF()
    for metric in (bleu, chrf):  # in two updates, as batches arrive
        metric.update(hyps[:2], [[r] for r in refs[:2]])
        metric.update(hyps[2:], [[r] for r in refs[2:]])
    assert float(bleu.compute()) == pytest.approx(BLEU().corpus_score(hyps, [refs]).score, abs=1e-3)
    assert float(chrf.compute()) == pytest.approx(CHRF().corpus_score(hyps, [refs]).score, abs=0.05)


def test_format_1_checkpoint_upgrades_to_the_network_layout() -> None:
    """The legacy translator's layers and settings move under ``network``; lr becomes the optimizer."""
    checkpoint = upgrade_checkpoint(read_checkpoint(LEGACY))
    hparams = checkpoint["hyper_parameters"]
    network = hparams["network"]
    assert network["class_path"] == "seqtasks.networks.seq2seq.Seq2SeqNetwork"
    assert network["init_args"]["encoder"]["init_args"]["hidden_size"] == 16
    assert network["init_args"]["attentional_size"] == 24 and network["init_args"]["dropout"] == 0.1
    assert hparams["optimizer"] == {
        "class_path": "torch.optim.AdamW",
        "init_args": {"lr": 0.02, "weight_decay": 0.0},
    }
    assert hparams["lr_scheduler"] is None
    assert {"label_smoothing", "val_bleu_sentences", "attention_maps", "pad_index"} <= set(hparams)
    assert not {"lr", "step_decay", "step_decay_start", "encoder", "dropout"} & set(hparams)
    assert all(key.startswith("network.") for key in checkpoint["state_dict"])
    model = load_task(LEGACY)
    assert model.hparams["target_vocab_size"] == model.network.output.out_features == 80
