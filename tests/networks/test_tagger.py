"""The tagger network on its own: a plain PyTorch loop, no Lightning; shapes, masks, settings checked."""

from __future__ import annotations

import sys

import pytest
import torch

from seqtasks.data.tagging import TaggingCodec, collate_tagged
from seqtasks.encoders import GRUEncoder, LSTMEncoder
from seqtasks.networks.tagger import TaggerNetwork

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCES = [["Anna", "Karenina", "visited", "Paris"], ["Yoda", "left"], ["Tokyo"]]
TAGS = [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O"], ["B-LOC"]]


def batch() -> dict[str, torch.Tensor]:
    words = sorted({w.lower() for s in SENTENCES for w in s})
    chars = sorted({c for s in SENTENCES for w in s for c in w})
    codec = TaggingCodec(["<pad>", "<unk>", *words], ["<pad>", "<unk>", *chars])
    examples = [
        {**codec.encode(s), "tags": [LABELS.index(t) for t in tags]}
        for s, tags in zip(SENTENCES, TAGS, strict=True)
    ]
    return collate_tagged(examples)


def network(crf: bool = True, encoder=LSTMEncoder) -> TaggerNetwork:
    return TaggerNetwork(
        40, 40, LABELS, 0, lambda width: encoder(width, hidden_size=8), word_dim=8, char_dim=4,
        char_filters=6, casing_dim=3, crf=crf,
    )  # fmt: skip


@pytest.mark.parametrize("crf", [True, False])
def test_a_plain_loop_learns_the_tags_without_lightning(crf: bool) -> None:
    torch.manual_seed(0)
    net = network(crf=crf, encoder=GRUEncoder if crf else LSTMEncoder)
    data = batch()
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.0)
    first = None
    for _ in range(60):
        scores = net(data["words"], data["chars"], data["casing"], data["lengths"])
        assert scores.shape == (3, 4, len(LABELS))
        loss = net.loss(scores, data["tags"], net.mask(data["lengths"], scores.size(1)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first / 4
    net.eval()
    with torch.no_grad():
        paths = net.tag_batch(data)
    assert paths.shape == (3, 4) and paths[1, 2:].tolist() == [0, 0]  # padding holds 0
    decoded = [
        [LABELS[i] for i in p[:n]] for p, n in zip(paths.tolist(), data["lengths"].tolist(), strict=True)
    ]
    assert decoded == TAGS


def test_network_module_imports_no_lightning() -> None:
    import subprocess

    code = "import sys, seqtasks.networks.tagger; print('lightning' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_mask_and_settings_checked() -> None:
    mask = TaggerNetwork.mask(torch.tensor([3, 1, 0]), 4)
    assert mask.tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]
    with pytest.raises(ValueError, match="labels must include 'O'"):
        TaggerNetwork(10, 10, ["B-PER", "I-PER"], 0, lambda w: LSTMEncoder(w, hidden_size=4))
    with pytest.raises(ValueError, match=r"word_dropout and dropout must be in \[0, 1\)"):
        TaggerNetwork(10, 10, LABELS, 0, lambda w: LSTMEncoder(w, hidden_size=4), dropout=1.0)
    with pytest.raises(ValueError, match="does not match the feature width"):
        TaggerNetwork(10, 10, LABELS, 0, lambda w: LSTMEncoder(w + 1, hidden_size=4))


def test_no_char_or_casing_features_and_word_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    net = TaggerNetwork(
        40, 40, LABELS, 0, lambda w: LSTMEncoder(w, hidden_size=4), word_dim=6, char_dim=0, casing_dim=0,
        word_dropout=0.5, dropout=0.0,
    )  # fmt: skip
    assert net.chars is None and net.casing is None and net.encoder.input_size == 6
    data = batch()
    net.eval()
    with torch.no_grad():
        once = net(data["words"], data["chars"], data["casing"], data["lengths"])
        again = net(data["words"], data["chars"], data["casing"], data["lengths"])
    assert torch.equal(once, again)
