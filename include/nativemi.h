/*
 * nativemi.h: the C ABI of the NativeMi engine (libnativemi.so, published with NativeAOT).
 *
 * One header, no other dependency. Every function is exported with C linkage and the platform's
 * default calling convention.
 *
 * ERRORS
 *   Every function that can fail returns a nativemi_status. NATIVEMI_OK (0) is success; any other value
 *   is the class of the failure, the same number the `nativemi` command exits with (2 usage, 3 input,
 *   4 environment, 1 internal, 130 cancelled). After a failure, nativemi_last_error() returns a one-line
 *   UTF-8 message naming what was wrong (the file, the field, what was expected) and
 *   nativemi_last_status() the same status again. Both are per thread: a failure on one thread never
 *   overwrites another thread's message. A successful call leaves the last error as it was.
 *   No C++ exception, .NET exception or .NET object ever crosses this boundary; a bug inside the engine is
 *   NATIVEMI_ERROR_INTERNAL with the exception's message, never a crash.
 *
 * OWNERSHIP
 *   - A nativemi_model* comes from nativemi_open and is released with nativemi_close (exactly once;
 *     nativemi_close(NULL) is a no-op). A closed handle must not be used again (a call that gets one, or any
 *     value nativemi_open did not return, fails with NATIVEMI_ERROR_USAGE: handle values are never reused).
 *   - Every output array (ids, vectors, hidden states) is a caller-provided buffer with its capacity in
 *     elements; the engine never keeps a pointer to it after the call returns. A buffer that is too small
 *     is NATIVEMI_ERROR_USAGE with the required size in the message, and nothing is written to it.
 *   - Strings the engine returns through char** (results JSON) are allocated by the engine and released
 *     with nativemi_free_string. Strings returned as const char* (version, last error) belong to the engine:
 *     nativemi_version's lives forever, nativemi_last_error's until the next failing call on that thread.
 *   - Every input string is NUL-terminated UTF-8 and is only read during the call.
 *
 * FILES
 *   The library reads the built-in models (models/), the packaged corpus (data/) and Hugging Face's tokenizers
 *   (libhf_tokenizers.so) from its own folder: keep the folder scripts/build-native.sh publishes together.
 *
 * THREADING
 *   Every function may be called from any thread. Calls on different handles run in parallel. Calls on the
 *   same handle from several threads are safe and run one at a time (the handle holds a lock). The progress
 *   callback of nativemi_measure is called on the thread that called nativemi_measure, never concurrently
 *   with itself, and never after nativemi_measure has returned.
 *   On the CPU backend the calling thread and ProcessorCount - 1 worker threads of the library share each
 *   operation. The workers start with the first operation and live as long as the process; after an operation
 *   they poll for the next one for NATIVEMI_SPIN_MICROSECONDS (environment variable, default 2000, 0 to block
 *   at once), yielding their core every 50 us, then block. Calls from several threads at once all complete;
 *   only one of them uses the workers at a time.
 *
 * SHAPES
 *   Hidden-state entries are numbered as the CLI numbers layers: 0 is the embedding output, 1..L the
 *   transformer blocks, and L + 1 the final-norm entry of families that have one (GPT-2's ln_f).
 *   Arrays are dense, row-major, float32, with the shapes stated at each function.
 */
#ifndef NATIVEMI_H
#define NATIVEMI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a function's signature or meaning changes; new functions do not bump it. */
#define NATIVEMI_ABI_VERSION 1

typedef enum nativemi_status {
    NATIVEMI_OK = 0,
    /* A bug in the engine; the message says what happened. */
    NATIVEMI_ERROR_INTERNAL = 1,
    /* A wrong argument: a NULL pointer, a buffer too small, an unknown option or an out-of-range value. */
    NATIVEMI_ERROR_USAGE = 2,
    /* A wrong input: a model folder, a checkpoint, a corpus, a tokenizer file. */
    NATIVEMI_ERROR_INPUT = 3,
    /* The environment lacks something: no usable GPU, a missing native library, GPU memory, an unwritable cache. */
    NATIVEMI_ERROR_ENVIRONMENT = 4,
    /* The cancellation flag was raised (or the progress callback asked to stop). */
    NATIVEMI_CANCELLED = 130
} nativemi_status;

typedef enum nativemi_pool {
    /* The model's default: mean for encoders, last token for decoders (what `nativemi measure` uses). */
    NATIVEMI_POOL_DEFAULT = 0,
    /* Mean over the sentence's real tokens (special tokens and padding excluded). */
    NATIVEMI_POOL_MEAN = 1,
    /* The first real token ([CLS] for BERT). */
    NATIVEMI_POOL_CLS = 2,
    /* The last real token. */
    NATIVEMI_POOL_LAST = 3,
    /* Element-wise maximum over the real tokens. */
    NATIVEMI_POOL_MAX = 4
} nativemi_pool;

/* An open model: weights loaded on a backend, tokenizer ready. Opaque. */
typedef struct nativemi_model nativemi_model;

/* What nativemi_describe fills in. Set struct_size to sizeof(nativemi_model_info) before the call. */
typedef struct nativemi_model_info {
    size_t struct_size;
    /* Family as config.json's model_type says it: "bert", "roberta", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma". */
    char family[32];
    /* "cpu" or "cuda" (the backend the handle runs on), or "cuda-emulated" for the CPU-emulated CUDA device. */
    char backend[32];
    /* Transformer blocks L. */
    int32_t layers;
    /* Hidden-state entries: L + 1, or L + 2 with a final-norm entry. */
    int32_t entries;
    /* Width of every hidden state. */
    int32_t width;
    /* Tokenizer vocabulary size. */
    int32_t vocabulary_size;
    /* Longest token sequence the model accepts; longer sentences are truncated. */
    int32_t max_sequence_length;
    /* 1 for decoders (causal attention), 0 for encoders. */
    int32_t causal;
    /* What NATIVEMI_POOL_DEFAULT means for this model (NATIVEMI_POOL_MEAN or NATIVEMI_POOL_LAST). */
    int32_t default_pool;
} nativemi_model_info;

/* Called during nativemi_measure. stage is a short name: "backend" (what "auto" or "cuda" chose), "sample", "import"
   (a built-in model's first use), "pooling", "tokenise", "forward", "control", "probe", "probe done", and with a
   baseline "baseline forward", "baseline probe", "baseline probe done"; completed of total units of that stage are done
   (total may be 0 when unknown); message is a human-readable line or NULL. Both strings are valid only during the call.
   Return 0 to go on, nonzero to cancel the measurement. */
typedef int32_t (*nativemi_progress_fn)(void *user_data, const char *stage, int64_t completed, int64_t total,
                                       const char *message);

/* The engine's version and the commit it was built from, e.g. "1.0.0+4cab1e4f0c...". Never NULL; lives as long as
   the library. */
const char *nativemi_version(void);

/* NATIVEMI_ABI_VERSION of the library actually loaded (compare with the header's). */
int32_t nativemi_abi_version(void);

/* The last failure's message on this thread, or "" when no call on this thread has failed. */
const char *nativemi_last_error(void);

/* The last failure's status on this thread, or NATIVEMI_OK when no call on this thread has failed. */
nativemi_status nativemi_last_status(void);

/* Opens a model: a built-in name ("minilm", "arctic-xs"; imported into the cache on first use) or a Hugging Face
   model folder. backend is "cpu", "cuda" (an error when no usable GPU) or "auto" (CUDA when usable, else the CPU);
   NULL means "cpu". On success *model is a new handle; on failure it is set to NULL. */
nativemi_status nativemi_open(const char *model_name_or_folder, const char *backend, nativemi_model **model);

/* Releases a handle and its weights. NULL is a no-op. */
void nativemi_close(nativemi_model *model);

/* Fills *info (info->struct_size must be set). */
nativemi_status nativemi_describe(nativemi_model *model, nativemi_model_info *info);

/* Token ids of one sentence exactly as the model sees them (special tokens included, truncated to the model's context).
   *count receives the number of ids even when capacity is too small (then nothing is written and the status is
   NATIVEMI_ERROR_USAGE); ids may be NULL with capacity 0 to ask for the count. */
nativemi_status nativemi_tokenize(nativemi_model *model, const char *text, int32_t *ids, size_t capacity, size_t *count);

/* Pooled sentence vectors of a batch at chosen entries.
   out has shape [layer_count][sentence_count][width] and capacity out_capacity floats
   (at least layer_count * sentence_count * width). layers lists entry numbers in any order (each 0..entries-1);
   out's first axis follows that order. Sentences are run in batches of the engine's choosing; the vectors do not depend
   on the batching beyond float rounding. A layer out of range or an unknown pool is NATIVEMI_ERROR_USAGE; a sentence with
   nothing to pool (no text token for mean and max, such as "" for BERT) is NATIVEMI_ERROR_INPUT naming it. */
nativemi_status nativemi_embed(nativemi_model *model, const char *const *sentences, size_t sentence_count,
                               const int32_t *layers, size_t layer_count, nativemi_pool pool,
                               float *out, size_t out_capacity);

/* The sequence length T that nativemi_hidden will use for these sentences: the longest sentence's token count. */
nativemi_status nativemi_hidden_length(nativemi_model *model, const char *const *sentences, size_t sentence_count,
                                       size_t *sequence_length);

/* Every hidden state of a batch. states has shape [entries][sentence_count][T][width] with T from
   nativemi_hidden_length; positions past a sentence's length are 0. lengths (sentence_count elements) receives each
   sentence's token count; it may be NULL. */
nativemi_status nativemi_hidden(nativemi_model *model, const char *const *sentences, size_t sentence_count,
                                float *states, size_t states_capacity, int32_t *lengths, size_t lengths_capacity);

/* Runs a whole measurement, as `nativemi measure` does, and returns its results.json text in *results_json
   (release it with nativemi_free_string; NULL on failure).
   options_json is a JSON object (NULL is NATIVEMI_ERROR_USAGE; "{}" means every default); every key is optional:
     "model" (string, default "minilm"), "backend" ("cpu", "cuda", "auto"; default "cpu"), "corpus" (path; default the
     packaged WordNet examples), "max_sentences" (int or null for all; default 8000), "layers" (array of ints; default
     all), "pool" ("mean", "cls", "last", "max"), "probe" ("positional", "bag", "linear"), "hidden" (int), "epochs" (int),
     "patience" (int), "learning_rate" (number), "classes" (int or null), "probe_seeds" (int), "target" ("coarse" or
     "token"), "batch_size" (int), "probe_batch_size" (int), "seed" (int), "max_tokens" (int), "bootstrap" (int),
     "fano_alphabet" ("vocab" or "observed"),
     "baseline" ("none", "random-init", "shuffled"), "cache" (folder of the embedding cache and of the imported built-in
     models). "probe_seeds" defaults to 1 on the CPU and 3 on a GPU, as the command's --probe-seeds. An unknown key, a key
     given twice, a value of the wrong type or out of the command's range is NATIVEMI_ERROR_USAGE naming the key and what
     was expected; a layer the model lacks, a missing corpus or model is NATIVEMI_ERROR_INPUT.
   progress may be NULL. cancel may be NULL; when it points to a flag, raising it (any nonzero value, from any thread)
   stops the measurement and returns NATIVEMI_CANCELLED: the flag is read every 50 ms (and before each progress call), and
   the run stops at the engine's next check, after each forward batch, each probe mini-batch and between the run's steps
   (loading a model and hashing its weights are not interrupted: a second or two for minilm). A progress callback that
   returns nonzero cancels the same way and is not called again. */
nativemi_status nativemi_measure(const char *options_json, nativemi_progress_fn progress, void *user_data,
                                 const volatile int32_t *cancel, char **results_json);

/* Releases a string the engine returned. NULL is a no-op. */
void nativemi_free_string(char *text);

#ifdef __cplusplus
}
#endif

#endif /* NATIVEMI_H */
