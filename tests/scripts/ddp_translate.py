"""Fit and test a tiny translator with 2 DDP processes on CPU; rank 0 writes what the test scored.

    python tests/scripts/ddp_translate.py --dataset DIR --out DIR

Launched by ``tests/test_ddp.py`` (Lightning's ``ddp`` strategy re-runs this command line for rank 1). The
test split is sharded across the ranks by a distributed sampler that pads the shares to equal length by
repeating rows; rank 0 writes ``OUT/report.json``: the sacreBLEU report the task computed from every
rank's translations, and the same model's translations of the whole test set in this one process.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pyarrow.parquet as pq
import torch

from seqtasks.data.translation import TranslationDataModule
from seqtasks.encoders import GRUEncoder
from seqtasks.inference.translation import Translator, corpus_scores
from seqtasks.networks.seq2seq import Seq2SeqNetwork
from seqtasks.tasks.translation import Seq2SeqTranslator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    pl.seed_everything(3)
    data = TranslationDataModule(args.dataset, subword_vocab_size=80, min_frequency=1, batch_size=4)
    network = partial(
        Seq2SeqNetwork,
        encoder=lambda size: GRUEncoder(size, hidden_size=16),
        decoder=lambda size: GRUEncoder(size, hidden_size=32, bidirectional=False),
        embedding_dim=16,
        attentional_size=32,
    )
    model = Seq2SeqTranslator(
        network,
        source_vocab_size=data.source_vocab_size,
        target_vocab_size=data.target_vocab_size,
        val_bleu_sentences=0,
        attention_maps=0,
        optimizer=partial(torch.optim.AdamW, lr=0.02, weight_decay=0.0),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(args.out),
    )
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data)
    if trainer.is_global_zero:
        table = pq.read_table(Path(args.dataset) / "test.parquet", columns=["en", "hi"])
        sources, references = table.column("en").to_pylist(), table.column("hi").to_pylist()
        alone = Translator.from_task(model).translate(sources, beam=1)
        report = model.test_report or {}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(
            json.dumps(
                {
                    "world_size": trainer.world_size,
                    "test_rows": len(sources),
                    "gathered": {k: report.get(k) for k in ("sentences", "bleu", "chrf", "hypotheses")},
                    "one_process": {"hypotheses": alone, **corpus_scores(alone, references)},
                },
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
