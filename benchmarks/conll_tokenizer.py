"""How often `seqtasks.data.tagging.tokenize` reproduces CoNLL-2003's own tokens, on raw-looking text.

    python benchmarks/conll_tokenizer.py [--data DIR] [--sentences 2000]

Two inputs per training sentence: its tokens joined by spaces (the tokenizer must not split or merge a
gold token), and the sentence detokenised the way a person writes it (no space before , . ) 's n't %, none
after ( $, quotes attached), where every token boundary has to be found. Prints, for each input, the share
of sentences tokenised exactly like the corpus and the share of gold tokens found with their exact span,
for the tokenizer and for the previous one (a plain word/number/punctuation regex) as a baseline.
"""

from __future__ import annotations

import argparse
import os
import re

import pyarrow.parquet as pq

from seqtasks.data.tagging_codec import tokenize_spans

OLD = re.compile(r"(?:\w\.){2,}|\d+(?:[.,:/-]\d+)+|\w+(?:[-'&]\w+)*|[^\w\s]")
NO_SPACE_BEFORE = {",", ".", ":", ";", "?", "!", ")", "]", "}", "%", "'s", "'S", "'re", "'ve", "'ll", "'m",
                   "'d", "n't", "N'T", "..."}  # fmt: skip
NO_SPACE_AFTER = {"(", "[", "{", "$"}


def detokenise(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence as a person would type it, and each token's span in it."""
    text, spans, quotes, glue = "", [], 0, True
    for token in tokens:
        opening = token == '"' and quotes % 2 == 0
        closing = token == '"' and quotes % 2 == 1
        if token == '"':
            quotes += 1
        if text and not glue and token not in NO_SPACE_BEFORE and not closing:
            text += " "
        spans.append((len(text), len(text) + len(token)))
        text += token
        glue = token in NO_SPACE_AFTER or opening
    return text, spans


def score(sentences: list[list[str]], split) -> tuple[float, float, float, float]:
    exact_joined = exact_raw = found_joined = found_raw = total = 0
    for tokens in sentences:
        joined = " ".join(tokens)
        spans, offset = [], 0
        for token in tokens:
            spans.append((offset, offset + len(token)))
            offset += len(token) + 1
        got = set(split(joined))
        exact_joined += got == set(spans)
        found_joined += len(got & set(spans))
        text, raw_spans = detokenise(tokens)
        got = set(split(text))
        exact_raw += got == set(raw_spans)
        found_raw += len(got & set(raw_spans))
        total += len(tokens)
    n = len(sentences)
    return exact_joined / n, found_joined / total, exact_raw / n, found_raw / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.path.join(os.environ.get("SEQTASKS_DATA_DIR", "data"), "conll2003")
    parser.add_argument("--data", default=default)
    parser.add_argument("--sentences", type=int, default=2000, help="training sentences (0: all)")
    options = parser.parse_args()
    rows = pq.read_table(os.path.join(options.data, "train.parquet"), columns=["tokens"]).column("tokens")
    sentences = [s for s in rows.to_pylist() if s and s != ["-DOCSTART-"]]
    if options.sentences:
        sentences = sentences[: options.sentences]
    new = lambda text: {(a, b) for _, a, b in tokenize_spans(text)}  # noqa: E731
    old = lambda text: {(m.start(), m.end()) for m in OLD.finditer(text)}  # noqa: E731
    print(f"{len(sentences)} CoNLL-2003 training sentences, {sum(map(len, sentences))} tokens")
    print(
        "| tokenizer | joined: sentences exact | joined: tokens | raw text: sentences exact | raw: tokens |"
    )
    print("|---|---|---|---|---|")
    for name, split in (("seqtasks (CoNLL rules)", new), ("previous regex", old)):
        values = score(sentences, split)
        print(f"| {name} | " + " | ".join(f"{100 * v:.2f}%" for v in values) + " |")


if __name__ == "__main__":
    main()
