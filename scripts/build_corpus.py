#!/usr/bin/env python3
"""Builds data/wordnet-examples.txt, the default corpus of `nativemi measure`.

The corpus is every example sentence quoted in a WordNet 3.0 gloss (the text after `|` on a synset
line, e.g. `| a young person; "they're just children"`). Standard library only, so it runs with
any python3.

Usage: python3 scripts/build_corpus.py [--wordnet-dir /usr/share/wordnet] [--out-dir data]
"""

import argparse
import os
import re
import sys

# Alphabetical so that the order, and so which copy of a duplicate is kept, never depends on
# the file system's listing order.
DATA_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
MIN_WORDS = 3
QUOTED = re.compile(r'"([^"]*)"')
WHITESPACE = re.compile(r"\s+")
# Licence lines in a data file's header look like "  12 text  "; synset lines start with the
# 8-digit byte offset of the line itself.
HEADER_LINE = re.compile(r"^  \d+ ?(.*?)\s*$")


def read_lines(path):
    # WordNet 3.0 data files are pure ASCII; latin-1 never fails to decode, so a stray byte in a
    # patched copy shows up in the output instead of aborting the build.
    with open(path, "r", encoding="latin-1", newline="\n") as handle:
        return handle.read().split("\n")


def examples_in(path):
    """Yields (offset, example) for every quoted example in one data file, in line order."""
    for line in read_lines(path):
        if not line or line.startswith(" "):
            continue
        offset_text = line.split(" ", 1)[0]
        if "|" not in line:
            continue
        gloss = line.split("|", 1)[1]
        for match in QUOTED.finditer(gloss):
            example = WHITESPACE.sub(" ", match.group(1)).strip()
            if len(example.split(" ")) >= MIN_WORDS:
                yield int(offset_text), example


def licence_text(path):
    lines = []
    for line in read_lines(path):
        match = HEADER_LINE.match(line)
        if not match:
            break
        lines.append(match.group(1))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def write_text(path, text):
    # Written to a temporary name and renamed so an interrupted run never leaves half a corpus.
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(temporary, path)


def data_file(wordnet_dir, name):
    path = os.path.join(wordnet_dir, name)
    if not os.path.isfile(path):
        sys.exit(f"{path}: not found (install Debian's wordnet-base or pass --wordnet-dir)")
    return path


def corpus_sentences(wordnet_dir):
    """The corpus's sentences in file order; scripts/build_evaluation.py derives the fine-tuning split from it."""
    found = []
    for file_index, name in enumerate(DATA_FILES):
        for offset, example in examples_in(data_file(wordnet_dir, name)):
            found.append((file_index, offset, example))
    found.sort(key=lambda item: (item[0], item[1]))  # stable: keeps gloss order within a synset

    seen = set()
    sentences = []
    for _, _, example in found:
        if example not in seen:
            seen.add(example)
            sentences.append(example)
    return sentences


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
    arguments = parser.parse_args()

    sentences = corpus_sentences(arguments.wordnet_dir)
    os.makedirs(arguments.out_dir, exist_ok=True)
    corpus_path = os.path.join(arguments.out_dir, "wordnet-examples.txt")
    write_text(corpus_path, "".join(sentence + "\n" for sentence in sentences))
    write_text(
        os.path.join(arguments.out_dir, "WORDNET-LICENSE.txt"),
        licence_text(os.path.join(arguments.wordnet_dir, DATA_FILES[0])))
    print(len(sentences))


if __name__ == "__main__":
    main()
