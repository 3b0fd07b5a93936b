"""nativemi.Model against the engine: shapes, pooling, the CLI's hidden states, errors and threads (minilm)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from _support import import_nativemi, read_safetensors, run_cli

nativemi = import_nativemi()

SENTENCES = [
    "A dog barks at the mailman.",
    "hello world",
    "Naïve café owners serve crème brûlée on Sundays.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
]
CLS, SEP = 101, 102
# Float rounding may differ between batchings and paddings (the header allows it); everything else must agree.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def model():
    with nativemi.Model("minilm") as opened:
        yield opened


def test_versions_and_library():
    assert isinstance(nativemi.__version__, str) and nativemi.__version__
    version = nativemi.library_version()
    assert isinstance(version, str) and version
    path = nativemi.library_path()
    assert path.is_file()
    if not os.environ.get("NATIVEMI_LIBRARY"):
        # An installed package loads its own bundled copy.
        assert path == Path(nativemi.__file__).resolve().parent / "_native" / "libnativemi.so"


def test_info(model):
    info = model.info
    assert info.family == "bert"
    assert info.backend.startswith("cpu")
    assert (info.layers, info.entries, info.width) == (6, 7, 384)  # all-MiniLM-L6-v2
    assert info.vocabulary_size == 30522
    assert info.max_sequence_length == 512
    assert info.causal is False
    assert info.default_pool == "mean"


def test_tokenize_hello_world(model):
    ids = model.tokenize("hello world")
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ids.tolist() == [CLS, 7592, 2088, SEP]


def test_tokenize_truncates_to_the_context(model):
    ids = model.tokenize("word " * 2000)
    assert len(ids) == model.info.max_sequence_length
    assert ids[0] == CLS and ids[-1] == SEP


def test_embed_shape_and_dtype(model):
    vectors = model.embed(SENTENCES, layers=[0, 6])
    assert vectors.shape == (2, len(SENTENCES), model.info.width)
    assert vectors.dtype == np.float32 and vectors.flags.c_contiguous
    assert np.isfinite(vectors).all()
    assert model.embed(SENTENCES).shape == (7, len(SENTENCES), model.info.width)  # layers=None: every entry
    assert model.embed(SENTENCES[0], layers=[0, 6]).shape == (2, model.info.width)  # one sentence: no sentence axis
    assert model.embed(SENTENCES, layers=6).shape == (len(SENTENCES), model.info.width)  # one layer: no layer axis
    assert model.embed([], layers=[0]).shape == (1, 0, model.info.width)


def test_embed_layer_order_and_negative_layers(model):
    forward = model.embed(SENTENCES, layers=[0, 6])
    backward = model.embed(SENTENCES, layers=[6, 0])
    np.testing.assert_allclose(backward, forward[::-1], **TOLERANCE)
    np.testing.assert_allclose(model.embed(SENTENCES, layers=[-1]), forward[1:], **TOLERANCE)


def test_embed_is_the_pooled_hidden_state(model):
    states, lengths = model.hidden(SENTENCES)
    assert states.shape[:2] == (7, len(SENTENCES)) and states.shape[3] == model.info.width
    assert states.dtype == np.float32 and lengths.dtype == np.int32
    layers = list(range(7))
    pooled = {pool: model.embed(SENTENCES, layers=layers, pool=pool) for pool in ("default", "mean", "cls", "last", "max")}
    for i, sentence in enumerate(SENTENCES):
        ids = model.tokenize(sentence)
        n = int(lengths[i])
        assert n == len(ids)
        # BERT: [CLS] first and [SEP] last are special; the mean and max pools use the real tokens between them.
        assert ids[0] == CLS and ids[-1] == SEP
        real = states[:, i, 1:n - 1, :]
        np.testing.assert_allclose(pooled["mean"][:, i], real.mean(axis=1), **TOLERANCE)
        np.testing.assert_allclose(pooled["default"][:, i], real.mean(axis=1), **TOLERANCE)
        np.testing.assert_allclose(pooled["max"][:, i], real.max(axis=1), **TOLERANCE)
        np.testing.assert_allclose(pooled["cls"][:, i], states[:, i, 0, :], **TOLERANCE)
        np.testing.assert_allclose(pooled["last"][:, i], states[:, i, n - 1, :], **TOLERANCE)
        assert not states[:, i, n:, :].any(), "positions past a sentence's length must be zero"
    np.testing.assert_array_equal(pooled["mean"], model.embed(SENTENCES, layers=layers, pool=nativemi.Pool.MEAN))


def test_hidden_of_one_sentence(model):
    states, length = model.hidden("hello world")
    assert states.shape == (7, 4, model.info.width) and length == 4


def test_same_hidden_states_and_ids_as_the_cli(model, tmp_path):
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    output = tmp_path / "hidden.safetensors"
    run_cli("hidden", "--model", "minilm", "--input", str(corpus), "--out", str(output))
    tensors = read_safetensors(output)
    states, lengths = model.hidden(SENTENCES)
    mask = tensors["attention_mask"]
    assert mask.shape[0] == len(SENTENCES)
    np.testing.assert_array_equal(mask.sum(axis=1), lengths)
    for i, sentence in enumerate(SENTENCES):
        n = int(lengths[i])
        assert tensors["input_ids"][i, :n].tolist() == model.tokenize(sentence).tolist()
        for entry in range(7):
            cli = tensors[f"hidden.{entry}"][i, :n]
            np.testing.assert_allclose(states[entry, i, :n], cli, **TOLERANCE, err_msg=f"sentence {i}, entry {entry}")
    # The CLI's pooled view of the same states.
    np.testing.assert_allclose(
        model.embed(SENTENCES, layers=[0, 6], pool="mean"),
        np.stack([[tensors[f"hidden.{e}"][i, 1:int(lengths[i]) - 1].mean(axis=0) for i in range(len(SENTENCES))] for e in (0, 6)]),
        **TOLERANCE,
    )


def test_missing_folder_is_an_input_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(nativemi.InputError) as caught:
        nativemi.Model(missing)
    assert caught.value.status == 3
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, nativemi.NativeMiError)


def test_unknown_backend_is_a_usage_error():
    with pytest.raises(nativemi.UsageError) as caught:
        nativemi.Model("minilm", backend="abacus")
    assert caught.value.status == 2 and "abacus" in str(caught.value)


def test_layer_out_of_range_is_a_usage_error(model):
    with pytest.raises(nativemi.UsageError) as caught:
        model.embed(SENTENCES, layers=[0, 7])
    assert caught.value.status == 2
    # The failure leaves the handle usable.
    assert model.embed(SENTENCES, layers=[0]).shape == (1, len(SENTENCES), model.info.width)


def test_bad_python_arguments(model):
    with pytest.raises(TypeError):
        model.embed([1, 2])
    with pytest.raises(nativemi.UsageError):
        model.embed(["a\0b"])
    with pytest.raises(nativemi.UsageError):
        model.embed(SENTENCES, pool="median")


def test_closed_model_is_refused():
    opened = nativemi.Model("minilm")
    opened.close()
    opened.close()  # idempotent
    assert opened.closed
    with pytest.raises(nativemi.UsageError, match="closed"):
        opened.embed(["hello world"])


def test_two_threads_with_their_own_models_give_identical_vectors(model):
    expected = model.embed(SENTENCES, layers=[0, 3, 6])
    results, errors = [None, None], []

    def work(slot):
        try:
            with nativemi.Model("minilm") as own:
                results[slot] = [own.embed(SENTENCES, layers=[0, 3, 6]) for _ in range(3)]
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for runs in results:
        for vectors in runs:
            np.testing.assert_array_equal(vectors, expected)


def test_threads_sharing_one_model(model):
    expected = model.embed(SENTENCES, layers=[6])
    results, errors = [], []

    def work():
        try:
            results.append(model.embed(SENTENCES, layers=[6]))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for vectors in results:
        np.testing.assert_array_equal(vectors, expected)


def test_missing_library_message(tmp_path):
    missing = tmp_path / "nowhere" / "libnativemi.so"
    environment = dict(os.environ, NATIVEMI_LIBRARY=str(missing))
    result = subprocess.run([sys.executable, "-c", "import nativemi"], capture_output=True, text=True, env=environment)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert str(missing) in result.stderr
    assert "scripts/build-native.sh" in result.stderr
