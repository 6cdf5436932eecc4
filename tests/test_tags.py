"""The one tag-scheme module: splitting tags, reading spans as conlleval does, scheme conversions, and the
IOB2 transitions the CRF allows."""

from __future__ import annotations

import random

import pytest

from seqtasks.tags import (
    check_tag,
    iob2_to_bioes,
    iob2_transitions,
    span_types,
    spans,
    split_tag,
    to_iob2,
)


def test_split_tag() -> None:
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("I-MISC-X") == ("I", "MISC-X")  # the type is everything after the first dash
    assert split_tag("O") == ("O", "")
    assert split_tag("NOUN") == ("NOUN", "") and split_tag("B-") == ("B-", "")


def test_spans_of_each_scheme() -> None:
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC"]
    bioes = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC"]
    expected = [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5)]
    assert spans(iob2) == spans(iob1) == spans(bioes) == expected
    assert spans([]) == [] and spans(["O", "O"]) == []


def test_spans_of_odd_sequences_as_conlleval_reads_them() -> None:
    assert spans(["O", "I-PER", "I-PER"]) == [("PER", 1, 2)]  # I- after O starts a span
    assert spans(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # I- of another type too
    assert spans(["I-PER"]) == [("PER", 0, 0)]  # at the start
    assert spans(["B-PER", "E-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 2, 2)]  # E- ends a span
    assert spans(["S-PER", "S-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]
    assert spans(["B-PER", ".", "I-PER"]) == [("PER", 0, 0), ("PER", 2, 2)]  # "." is outside


def test_scheme_conversions_round_trip() -> None:
    iob1 = ["I-ORG", "O", "I-PER", "I-PER", "B-PER", "I-LOC", "I-MISC", "O", "I-LOC"]
    iob2 = to_iob2(iob1, "iob1")
    assert iob2 == ["B-ORG", "O", "B-PER", "I-PER", "B-PER", "B-LOC", "B-MISC", "O", "B-LOC"]
    assert to_iob2(iob2, "iob2") == iob2
    bioes = iob2_to_bioes(iob2)
    assert bioes == ["S-ORG", "O", "B-PER", "E-PER", "S-PER", "S-LOC", "S-MISC", "O", "S-LOC"]
    assert to_iob2(bioes, "bioes") == iob2
    assert to_iob2(["O", "I-PER", "I-LOC"], "iob2") == ["O", "B-PER", "B-LOC"]  # repaired like conlleval
    with pytest.raises(ValueError, match="scheme must be one of"):
        to_iob2(["O"], "bilou")  # type: ignore[arg-type]


def test_conversions_keep_the_spans_of_random_sequences() -> None:
    rng = random.Random(0)
    for _ in range(300):
        tags = [rng.choice(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]) for _ in range(rng.randint(0, 12))]
        iob2 = to_iob2(tags, "iob2")
        assert spans(iob2) == spans(tags)
        assert spans(iob2_to_bioes(iob2)) == spans(iob2)
        assert to_iob2(iob2_to_bioes(iob2), "bioes") == iob2


def test_check_tag_names_the_problem() -> None:
    assert check_tag("B-PER", "iob2") is None and check_tag("O", "bioes") is None
    assert "prefix 'S'" in (check_tag("S-PER", "iob1") or "")
    assert "neither O nor PREFIX-TYPE" in (check_tag("PER", "iob2") or "")
    assert check_tag("E-PER", "bioes") is None


def test_iob2_transitions_and_types() -> None:
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, start = iob2_transitions(labels)
    assert start == [True, True, False, True, False]
    into_i_per = [allowed[i][2] for i in range(5)]
    assert into_i_per == [False, True, True, False, False]  # only from B-PER / I-PER
    assert all(allowed[i][j] for i in range(5) for j in (0, 1, 3))
    assert span_types(labels) == ["LOC", "PER"]
