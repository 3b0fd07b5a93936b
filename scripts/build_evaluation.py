#!/usr/bin/env python3
"""Builds data/wordnet-eval/, the evaluation of `nativemi evaluate`, and data/wordnet-finetune.txt.

The evaluation measures understanding without task supervision on WordNet 3.0 synsets held out of
fine-tuning: (a) gloss-to-example retrieval (a synset's definition against every held-out example
sentence) and (b) same-sense detection (two example sentences that use one lemma, of one synset or of
two). data/README.md describes the files and the rules below. Standard library only; rerunning it on
the same WordNet files gives byte-identical output.

Usage: python3 scripts/build_evaluation.py [--wordnet-dir /usr/share/wordnet] [--out-dir data]
"""

import argparse
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_corpus  # noqa: E402  (the corpus's own parsing, so examples here are spelled as there)

# WordNet's file letters; adjective satellites (ss_type "s") live in data.adj and get its "a".
POS_OF_FILE = {"data.adj": "a", "data.adv": "r", "data.noun": "n", "data.verb": "v"}
EXCEPTION_FILES = {"a": "adj.exc", "r": "adv.exc", "n": "noun.exc", "v": "verb.exc"}

# A quarter of the lemmas that can give both kinds of pair, with every synset of theirs, and a
# twentieth of all other synsets with examples: about 3,400 synsets and 5,000 example sentences,
# which minilm embeds (with the definitions) in well under a minute on two cores, while the
# fine-tuning split keeps 88 % of the corpus.
PAIR_LEMMA_FRACTION = 0.2
SYNSET_FRACTION = 0.04
# Without a cap a few very polysemous verbs ("take", "break") would supply most pairs.
MAX_PAIRS_PER_LEMMA_AND_LABEL = 6

ADJECTIVE_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def fraction_of(key):
    """A number in [0, 1) fixed by the text alone: SHA-256, so no Python version or seed changes it."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def synsets_in(path, pos):
    """Yields (synset id, lemmas, definition, [(example number, example)]) for one data file."""
    for line in build_corpus.read_lines(path):
        if not line or line.startswith(" ") or "|" not in line:
            continue
        head, gloss = line.split("|", 1)
        fields = head.split(" ")
        offset, word_count = fields[0], int(fields[3], 16)
        lemmas = []
        for k in range(word_count):
            lemma = ADJECTIVE_MARKER.sub("", fields[4 + 2 * k]).lower()
            if lemma not in lemmas:
                lemmas.append(lemma)
        # The definition is what precedes the first example; WordNet separates the parts with "; ".
        definition = build_corpus.WHITESPACE.sub(" ", gloss.split('"', 1)[0]).strip().rstrip(";").strip()
        examples = []
        for number, match in enumerate(build_corpus.QUOTED.finditer(gloss), start=1):
            example = build_corpus.WHITESPACE.sub(" ", match.group(1)).strip()
            if len(example.split(" ")) >= build_corpus.MIN_WORDS:
                examples.append((number, example))
        yield f"{offset}-{pos}", lemmas, definition, examples


def irregular_forms(wordnet_dir):
    """(pos, base form) -> inflected forms, from WordNet's exception lists ("ran run")."""
    forms = {}
    for pos, name in EXCEPTION_FILES.items():
        for line in build_corpus.read_lines(build_corpus.data_file(wordnet_dir, name)):
            parts = line.split(" ")
            if len(parts) >= 2:
                for base in parts[1:]:
                    forms.setdefault((pos, base.lower()), set()).add(parts[0].lower())
    return forms


def regular_forms(pos, word):
    """The word and its regular inflections for its part of speech: enough to find "banks" or "stopped"."""
    forms = {word}
    doubled = len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou" and word[-3] not in "aeiou"
    if pos in ("n", "v"):
        forms |= {word + "s", word + "es"}
        if word.endswith("y"):
            forms.add(word[:-1] + "ies")
    if pos == "v":
        forms |= {word + "ed", word + "d", word + "ing"}
        if word.endswith("e"):
            forms.add(word[:-1] + "ing")
        if word.endswith("y"):
            forms.add(word[:-1] + "ied")
        if doubled:
            forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    if pos in ("a", "r"):
        forms |= {word + "er", word + "est"}
        if word.endswith("e"):
            forms |= {word + "r", word + "st"}
        if word.endswith("y"):
            forms |= {word[:-1] + "ier", word[:-1] + "iest"}
        if doubled:
            forms |= {word + word[-1] + "er", word + word[-1] + "est"}
    return forms


def lemma_matcher(pos, lemma, irregular):
    """A pattern that finds the lemma (any form above, as whole words) in an example sentence."""
    words = lemma.split("_")
    # Only the last word of a multi-word lemma inflects ("hot dogs"; "looks after" is missed unless listed).
    heads = regular_forms(pos, words[-1]) | irregular.get((pos, words[-1]), set())
    phrases = {"_".join(words[:-1] + [h]) for h in heads} | irregular.get((pos, lemma), set())
    alternatives = sorted(r"[\s-]".join(re.escape(w) for w in phrase.split("_")) for phrase in phrases)
    return re.compile(r"(?<![\w'-])(?:" + "|".join(alternatives) + r")(?![\w'-])", re.IGNORECASE)


def build(wordnet_dir):
    irregular = irregular_forms(wordnet_dir)
    synsets = []  # (id, pos, lemmas, definition, examples) in the corpus's order: data file, then offset
    for name in build_corpus.DATA_FILES:
        pos = POS_OF_FILE[name]
        for synset_id, lemmas, definition, examples in synsets_in(build_corpus.data_file(wordnet_dir, name), pos):
            synsets.append((synset_id, pos, lemmas, definition, examples))

    # An example quoted in two synsets (or twice in one) would have two right answers: it is left out.
    occurrences = {}
    for synset in synsets:
        for _, example in synset[4]:
            occurrences[example] = occurrences.get(example, 0) + 1
    usable = {}
    for synset_id, pos, lemmas, definition, examples in synsets:
        kept = [(n, e) for n, e in examples if occurrences[e] == 1]
        if definition and kept:
            usable[synset_id] = (pos, lemmas, definition, kept)

    # Which of the synset's lemmas each example uses.
    matchers = {}
    uses = {}  # example id -> lemmas found in it
    by_lemma = {}  # (pos, lemma) -> [(synset id, example id)]
    senses = {}  # (pos, lemma) -> usable synsets that hold the lemma
    for synset_id, (pos, lemmas, _, examples) in usable.items():
        for lemma in lemmas:
            senses.setdefault((pos, lemma), []).append(synset_id)
        for number, example in examples:
            example_id = f"{synset_id}.{number}"
            found = []
            for lemma in lemmas:
                key = (pos, lemma)
                if key not in matchers:
                    matchers[key] = lemma_matcher(pos, lemma, irregular)
                if matchers[key].search(example):
                    found.append(lemma)
                    by_lemma.setdefault(key, []).append((synset_id, example_id))
            uses[example_id] = found

    def candidate_pairs(key):
        members = by_lemma.get(key, [])
        same, different = [], []
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                pair = (members[i][1], members[j][1])
                (same if members[i][0] == members[j][0] else different).append(pair)
        return same, different

    pair_lemmas = []
    for key in sorted(by_lemma):
        same, different = candidate_pairs(key)
        if same and different and fraction_of(f"lemma:{key[0]}:{key[1]}") < PAIR_LEMMA_FRACTION:
            pair_lemmas.append(key)

    held_out = set()
    for key in pair_lemmas:
        held_out.update(senses[key])
    for synset_id in usable:
        if fraction_of(f"synset:{synset_id}") < SYNSET_FRACTION:
            held_out.add(synset_id)

    pairs = []
    for key in pair_lemmas:
        same, different = candidate_pairs(key)
        # As many pairs of each label per lemma, so the lemma itself says nothing about the label.
        count = min(len(same), len(different), MAX_PAIRS_PER_LEMMA_AND_LABEL)
        for label, candidates in ((1, same), (0, different)):
            chosen = sorted(candidates, key=lambda p: (fraction_of(f"pair:{p[0]}:{p[1]}"), p))[:count]
            for a, b in sorted(chosen):
                pairs.append((key, a, b, label))

    order = [s for s in usable if s in held_out]  # dict order: the corpus's order
    return usable, uses, order, pairs


def tsv_line(fields):
    for field in fields:
        if "\t" in field or "\n" in field:
            sys.exit(f"a field holds a tab or a line break: {field!r}")
    return "\t".join(fields) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
    arguments = parser.parse_args()

    usable, uses, order, pairs = build(arguments.wordnet_dir)
    glosses = [tsv_line(["synset", "lemmas", "definition"])]
    examples = [tsv_line(["example", "synset", "lemmas", "sentence"])]
    held_out_texts = set()
    example_count = 0
    for synset_id in order:
        _, lemmas, definition, kept = usable[synset_id]
        glosses.append(tsv_line([synset_id, " ".join(lemmas), definition]))
        held_out_texts.add(definition)
        for number, example in kept:
            example_id = f"{synset_id}.{number}"
            examples.append(tsv_line([example_id, synset_id, " ".join(uses[example_id]), example]))
            held_out_texts.add(example)
            example_count += 1
    pair_lines = [tsv_line(["pair", "lemma", "example_a", "example_b", "same_synset"])]
    for index, ((pos, lemma), a, b, label) in enumerate(pairs, start=1):
        pair_lines.append(tsv_line([f"p{index:05d}", f"{lemma}-{pos}", a, b, str(label)]))

    corpus = build_corpus.corpus_sentences(arguments.wordnet_dir)
    finetune = [s for s in corpus if s not in held_out_texts]

    folder = os.path.join(arguments.out_dir, "wordnet-eval")
    os.makedirs(folder, exist_ok=True)
    build_corpus.write_text(os.path.join(folder, "glosses.tsv"), "".join(glosses))
    build_corpus.write_text(os.path.join(folder, "examples.tsv"), "".join(examples))
    build_corpus.write_text(os.path.join(folder, "pairs.tsv"), "".join(pair_lines))
    build_corpus.write_text(os.path.join(folder, "heldout-sentences.txt"), "".join(t + "\n" for t in sorted(held_out_texts)))
    build_corpus.write_text(
        os.path.join(folder, "WORDNET-LICENSE.txt"),
        build_corpus.licence_text(build_corpus.data_file(arguments.wordnet_dir, build_corpus.DATA_FILES[0])))
    build_corpus.write_text(os.path.join(arguments.out_dir, "wordnet-finetune.txt"), "".join(s + "\n" for s in finetune))
    positives = sum(1 for p in pairs if p[3] == 1)
    print(f"{len(order)} held-out synsets, {example_count} examples, {len(pairs)} pairs ({positives} same synset, "
          f"{len(pairs) - positives} different) over {len({p[0] for p in pairs})} lemmas; "
          f"fine-tuning split {len(finetune)} of {len(corpus)} corpus sentences")


if __name__ == "__main__":
    main()
