"""ONNX export of the classifier and of the tagger's emission network: onnxruntime gives PyTorch's outputs
(max |diff| < 1e-5) on the legacy checkpoints' real inputs at several batch sizes and lengths, ragged
included, hence the same labels and the same Viterbi tags; the file carries its labels and vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqtasks.checkpoints import load_task
from seqtasks.cli import main
from seqtasks.inference.export import export_onnx, onnx_metadata

ort = pytest.importorskip("onnxruntime")

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
EXPECTED = torch.load(LEGACY / "expected.pt", weights_only=True)


@pytest.fixture(scope="module", params=["classifier", "tagger", "tagger_softmax"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    task = load_task(LEGACY / f"{name}.ckpt")
    path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
    export_onnx(task, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return name, task, path, session


def subsets(name: str) -> list[dict[str, torch.Tensor]]:
    """Real inputs in batches of 1, 2, 3 and all rows, each cut to its own longest row (ragged rows)."""
    data = EXPECTED[name]
    keys = ["tokens", "lengths"] if name == "classifier" else ["words", "chars", "casing", "lengths"]
    total = data["lengths"].numel()
    batches = []
    for rows in ([0], [total - 1], [1, 3], [2, 0, 1], list(range(total))):
        index = torch.tensor(rows)
        time = int(data["lengths"][index].max())
        batch = {k: data[k][index] for k in keys}
        for k in keys[:-1]:
            batch[k] = batch[k][:, :time]
        batches.append(batch)
    return batches


def synthetic(task, name: str, batch: int, time: int) -> dict[str, torch.Tensor]:
    """A random ragged batch longer than anything traced (ids within the vocabularies, padding zeroed)."""
    generator = torch.Generator().manual_seed(batch * 100 + time)
    lengths = torch.randint(1, time + 1, (batch,), generator=generator)
    lengths[0] = time
    mask = torch.arange(time).unsqueeze(0) < lengths.unsqueeze(1)
    network = task.network
    if name == "classifier":
        tokens = torch.randint(2, network.embedding.num_embeddings, (batch, time), generator=generator)
        return {"tokens": tokens * mask, "lengths": lengths}
    words = torch.randint(2, network.embedding.num_embeddings, (batch, time), generator=generator) * mask
    chars = torch.randint(2, network.chars.embedding.num_embeddings, (batch, time, 6), generator=generator)
    chars = chars * mask.unsqueeze(-1) * (torch.arange(6) < 4)  # words of 4 characters
    casing = torch.randint(1, network.casing.num_embeddings, (batch, time), generator=generator) * mask
    return {"words": words, "chars": chars, "casing": casing, "lengths": lengths}


def run_both(task, session, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    task.network.eval()
    with torch.no_grad():
        reference = task.network(*batch.values())
    (output,) = session.run(None, {k: v.numpy().astype(np.int64) for k, v in batch.items()})
    return reference, torch.from_numpy(output)


def test_onnx_matches_pytorch_on_real_and_ragged_inputs(exported) -> None:
    name, task, _, session = exported
    batches = subsets(name) + [synthetic(task, name, b, t) for b, t in ((1, 1), (4, 17), (9, 40))]
    for batch in batches:
        reference, output = run_both(task, session, batch)
        assert output.shape == reference.shape
        assert float((output - reference).abs().max()) < 1e-5
        if name == "classifier":
            assert torch.equal(output.argmax(-1), reference.argmax(-1))
        else:
            mask = torch.arange(output.size(1)).unsqueeze(0) < batch["lengths"].unsqueeze(1)
            assert torch.equal(task.network.decode(output, mask), task.network.decode(reference, mask))


def test_the_file_carries_labels_inputs_and_vocabulary(exported) -> None:
    name, task, path, session = exported
    meta = onnx_metadata(path)
    assert meta["task"].endswith(type(task).__name__)
    assert meta["labels"] == list(task.labels if name == "classifier" else task.network.labels)
    assert meta["inputs"] == [i.name for i in session.get_inputs()]
    assert meta["artefacts"] == task.artefacts
    assert ("crf_transitions" in meta) == (getattr(task.network, "crf", None) is not None)


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model.onnx"
    main(["export", "--ckpt", str(LEGACY / "classifier.ckpt"), "--format", "onnx", "--output", str(out)])
    assert out.is_file() and "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="seqtasks export: Seq2SeqTranslator cannot be exported"):
        main(["export", "--ckpt", str(LEGACY / "translator.ckpt"), "--output", str(tmp_path / "t.onnx")])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["export", "--ckpt", str(tmp_path / "missing.ckpt")])
