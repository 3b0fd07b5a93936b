/*
 * The C ABI of libnativemi.so (include/nativemi.h) against the `nativemi hidden` CLI: tests/c/run.sh writes the
 * sentences file and the CLI's safetensors file for it, then runs
 *
 *   nativemi_test SENTENCES.txt HIDDEN.safetensors
 *
 * Exits 0 when every check passes; each failed check prints one line and the run goes on to the next.
 */
#define _POSIX_C_SOURCE 200809L
#include "nativemi.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;
static int checks;

#define CHECK(condition, ...)                                                                                          \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(condition)) {                                                                                            \
            failures++;                                                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, " (last error: %s)\n", nativemi_last_error());                                             \
        }                                                                                                              \
    } while (0)

/* Stops the run when a step everything after it needs has failed. */
#define REQUIRE(condition, ...)                                                                                        \
    do {                                                                                                               \
        CHECK(condition, __VA_ARGS__);                                                                                 \
        if (!(condition)) {                                                                                            \
            fprintf(stderr, "%d of %d checks failed; stopping\n", failures, checks);                                   \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

/* The relative tolerance of every comparison with the CLI's file: ||a - b||_inf <= TOLERANCE * ||b||_inf. */
#define TOLERANCE 1e-5

/* The ids minilm's tokenizer marks special ([PAD], [UNK] excepted: it is a text token, [CLS], [SEP], [MASK]). */
static int is_special(int64_t id) { return id == 0 || id == 101 || id == 102 || id == 103; }

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long length = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)length + 1);
    if (bytes == NULL || fread(bytes, 1, (size_t)length, f) != (size_t)length) {
        fclose(f);
        free(bytes);
        return NULL;
    }
    fclose(f);
    bytes[length] = 0;
    *size = (size_t)length;
    return bytes;
}

/* ---- a safetensors reader just large enough for what `nativemi hidden` writes ---- */

typedef struct {
    char *bytes;
    size_t size;
    const char *header; /* the JSON header (not NUL-terminated inside bytes; a copy is kept here) */
    const char *data;   /* the byte buffer after the header */
} safetensors;

typedef struct {
    char dtype[8];
    int64_t shape[4];
    int rank;
    const void *data;
    size_t bytes;
} tensor;

static int open_safetensors(const char *path, safetensors *file) {
    if ((file->bytes = read_file(path, &file->size)) == NULL || file->size < 8) return 0;
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = (header_length << 8) | (unsigned char)file->bytes[i];
    if (8 + header_length > file->size) return 0;
    char *header = malloc(header_length + 1);
    memcpy(header, file->bytes + 8, header_length);
    header[header_length] = 0;
    file->header = header;
    file->data = file->bytes + 8 + header_length;
    return 1;
}

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

/* Reads up to max integers of a JSON array starting at p ('['); returns how many. */
static int read_integers(const char *p, int64_t *values, int max) {
    int count = 0;
    p = skip_space(p);
    if (*p != '[') return -1;
    p++;
    while (1) {
        p = skip_space(p);
        if (*p == ']') return count;
        char *end;
        long long value = strtoll(p, &end, 10);
        if (end == p || count == max) return -1;
        values[count++] = value;
        p = skip_space(end);
        if (*p == ',') p++;
    }
}

/* The tensor called name: the key whose value is an object (the metadata has keys of tensor names with string values). */
static int find_tensor(const safetensors *file, const char *name, tensor *out) {
    char key[96];
    snprintf(key, sizeof key, "\"%s\"", name);
    for (const char *p = strstr(file->header, key); p != NULL; p = strstr(p + 1, key)) {
        const char *colon = skip_space(p + strlen(key));
        if (*colon != ':') continue;
        const char *object = skip_space(colon + 1);
        if (*object != '{') continue;
        const char *end = strchr(object, '}');
        const char *dtype = strstr(object, "\"dtype\"");
        const char *shape = strstr(object, "\"shape\"");
        const char *offsets = strstr(object, "\"data_offsets\"");
        if (end == NULL || dtype == NULL || shape == NULL || offsets == NULL || dtype > end || shape > end || offsets > end) return 0;
        const char *dtype_value = strchr(strchr(dtype + 7, ':'), '"');
        if (dtype_value == NULL) return 0;
        size_t dtype_length = (size_t)(strchr(dtype_value + 1, '"') - dtype_value - 1);
        if (dtype_length >= sizeof out->dtype) return 0;
        memcpy(out->dtype, dtype_value + 1, dtype_length);
        out->dtype[dtype_length] = 0;
        out->rank = read_integers(strchr(shape + 7, ':') + 1, out->shape, 4);
        int64_t range[2];
        if (out->rank < 0 || read_integers(strchr(offsets + 14, ':') + 1, range, 2) != 2) return 0;
        out->data = file->data + range[0];
        out->bytes = (size_t)(range[1] - range[0]);
        return 1;
    }
    return 0;
}

/* ---- the sentences ---- */

#define MAX_SENTENCES 8

static int read_sentences(const char *path, char **sentences) {
    size_t size;
    char *text = read_file(path, &size);
    if (text == NULL) return 0;
    int count = 0;
    for (char *line = strtok(text, "\n"); line != NULL && count < MAX_SENTENCES; line = strtok(NULL, "\n")) sentences[count++] = line;
    return count;
}

/* ||a - b||_inf / ||b||_inf over n floats. */
static double relative_difference(const float *a, const float *b, size_t n) {
    double difference = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > difference || isnan(d)) difference = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    return scale > 0 ? difference / scale : difference;
}

/* ---- threads ---- */

typedef struct {
    const char *const *sentences;
    size_t count;
    const int32_t *layers;
    size_t layer_count;
    float *out;
    size_t capacity;
    nativemi_model *model; /* NULL: the thread opens its own */
    nativemi_status status;
} embed_job;

static void *embed_thread(void *argument) {
    embed_job *job = argument;
    nativemi_model *model = job->model;
    if (model == NULL && (job->status = nativemi_open("minilm", "cpu", &model)) != NATIVEMI_OK) return NULL;
    job->status = nativemi_embed(model, job->sentences, job->count, job->layers, job->layer_count, NATIVEMI_POOL_MEAN, job->out, job->capacity);
    if (job->model == NULL) nativemi_close(model);
    return NULL;
}

typedef struct {
    nativemi_status status;
    char message[512];
    nativemi_status own_status_after;
} failing_job;

/* Fails on its own thread; the main thread's last error must not change. */
static void *failing_thread(void *argument) {
    failing_job *job = argument;
    nativemi_model *model;
    job->status = nativemi_open("/nonexistent/other-thread-model", "cpu", &model);
    snprintf(job->message, sizeof job->message, "%s", nativemi_last_error());
    job->own_status_after = nativemi_last_status();
    return NULL;
}

typedef struct {
    int calls;
    int stop_after;         /* return nonzero at this call (0: never) */
    volatile int32_t *flag; /* raise this at call raise_at (0: never) */
    int raise_at;
    int off_thread;         /* set when a call arrives on another thread than the measuring one */
    pthread_t caller;
    int saw_forward;
} progress_state;

static int32_t count_progress(void *user_data, const char *stage, int64_t completed, int64_t total, const char *message) {
    progress_state *state = user_data;
    (void)completed;
    (void)total;
    (void)message;
    state->calls++;
    if (!pthread_equal(pthread_self(), state->caller)) state->off_thread = 1;
    if (strcmp(stage, "forward") == 0) state->saw_forward = 1;
    if (state->flag != NULL && state->calls == state->raise_at) *state->flag = 1;
    return state->stop_after != 0 && state->calls >= state->stop_after;
}

typedef struct {
    volatile int32_t *flag;
    double delay_seconds;
} raiser_job;

static void *raise_later(void *argument) {
    raiser_job *job = argument;
    struct timespec pause = {(time_t)job->delay_seconds, (long)((job->delay_seconds - (double)(time_t)job->delay_seconds) * 1e9)};
    nanosleep(&pause, NULL);
    *job->flag = 1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SENTENCES.txt HIDDEN.safetensors\n", argv[0]);
        return 2;
    }
    char *sentence_storage[MAX_SENTENCES];
    setvbuf(stdout, NULL, _IOLBF, 0);
    int n = read_sentences(argv[1], sentence_storage);
    REQUIRE(n >= 3, "read %d sentences from %s; expected 3 or more", n, argv[1]);
    const char *const *sentences = (const char *const *)sentence_storage;
    safetensors file;
    REQUIRE(open_safetensors(argv[2], &file), "cannot read %s as safetensors", argv[2]);

    /* Version and ABI. */
    const char *version = nativemi_version();
    CHECK(version != NULL && version[0] != 0, "nativemi_version is empty");
    CHECK(version == nativemi_version(), "nativemi_version returns another string on a second call");
    CHECK(nativemi_abi_version() == NATIVEMI_ABI_VERSION, "ABI %d, header %d", nativemi_abi_version(), NATIVEMI_ABI_VERSION);
    CHECK(strcmp(nativemi_last_error(), "") == 0 && nativemi_last_status() == NATIVEMI_OK, "a last error before any failure");
    printf("libnativemi %s, ABI %d\n", version, nativemi_abi_version());

    /* Open and describe. */
    double opened_at = now_seconds();
    nativemi_model *model = NULL;
    REQUIRE(nativemi_open("minilm", NULL, &model) == NATIVEMI_OK && model != NULL, "nativemi_open(minilm)");
    printf("opened minilm in %.2f s\n", now_seconds() - opened_at);
    nativemi_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    REQUIRE(nativemi_describe(model, &info) == NATIVEMI_OK, "nativemi_describe");
    CHECK(strcmp(info.family, "bert") == 0, "family %s", info.family);
    CHECK(strcmp(info.backend, "cpu") == 0, "backend %s", info.backend);
    CHECK(info.layers == 6 && info.entries == 7 && info.width == 384, "layers %d entries %d width %d", info.layers, info.entries, info.width);
    CHECK(info.vocabulary_size == 30522 && info.max_sequence_length == 512, "vocabulary %d, max length %d", info.vocabulary_size,
          info.max_sequence_length);
    CHECK(info.causal == 0 && info.default_pool == NATIVEMI_POOL_MEAN, "causal %d default pool %d", info.causal, info.default_pool);
    const size_t d = (size_t)info.width;
    const size_t entries = (size_t)info.entries;

    /* The CLI's file: input_ids and attention_mask [n, T] as I64, hidden.0..hidden.6 [n, T, d] as F32, and no hidden.final for BERT. */
    tensor ids_tensor, mask_tensor, probe;
    REQUIRE(find_tensor(&file, "input_ids", &ids_tensor) && strcmp(ids_tensor.dtype, "I64") == 0 && ids_tensor.rank == 2 && ids_tensor.shape[0] == n,
            "input_ids in %s", argv[2]);
    REQUIRE(find_tensor(&file, "attention_mask", &mask_tensor) && strcmp(mask_tensor.dtype, "I64") == 0, "attention_mask in %s", argv[2]);
    CHECK(!find_tensor(&file, "hidden.final", &probe), "a BERT file holds hidden.final");
    const size_t t = (size_t)ids_tensor.shape[1];
    const int64_t *file_ids = ids_tensor.data;
    const int64_t *file_mask = mask_tensor.data;
    const float *file_hidden[16];
    for (size_t e = 0; e < entries; e++) {
        char name[32];
        snprintf(name, sizeof name, "hidden.%zu", e);
        tensor h;
        REQUIRE(find_tensor(&file, name, &h) && strcmp(h.dtype, "F32") == 0 && h.rank == 3 && (size_t)h.shape[0] == (size_t)n && (size_t)h.shape[1] == t &&
                    (size_t)h.shape[2] == d,
                "%s [%d, %zu, %zu] F32 in %s", name, n, t, d, argv[2]);
        file_hidden[e] = h.data;
    }

    /* Tokenize: the count alone (USAGE with the count), then the ids, which are the file's. */
    for (int s = 0; s < n; s++) {
        size_t count = 0;
        CHECK(nativemi_tokenize(model, sentences[s], NULL, 0, &count) == NATIVEMI_ERROR_USAGE && count > 0, "token count query of sentence %d", s);
        int32_t ids[128];
        size_t count2 = 0;
        CHECK(nativemi_tokenize(model, sentences[s], ids, 128, &count2) == NATIVEMI_OK && count2 == count, "tokenize sentence %d", s);
        size_t file_length = 0;
        for (size_t i = 0; i < t; i++) file_length += file_mask[(size_t)s * t + i] != 0;
        int same = file_length == count2;
        for (size_t i = 0; same && i < count2; i++) same = ids[i] == file_ids[(size_t)s * t + i];
        CHECK(same, "sentence %d: tokenize gives %zu ids, the file %zu (or other ids)", s, count2, file_length);
        CHECK(ids[0] == 101 && ids[count2 - 1] == 102, "sentence %d is not [CLS] ... [SEP]", s);
    }

    /* Embed at layers 0, 3, 6 (mean), against the file mean-pooled by the engine's rule: the real tokens that are not special. */
    const int32_t layers[3] = {0, 3, 6};
    const size_t embed_size = 3 * (size_t)n * d;
    float *vectors = malloc(embed_size * sizeof(float));
    float *reference = malloc(embed_size * sizeof(float));
    REQUIRE(nativemi_embed(model, sentences, (size_t)n, layers, 3, NATIVEMI_POOL_MEAN, vectors, embed_size) == NATIVEMI_OK, "nativemi_embed mean");
    for (size_t k = 0; k < 3; k++) {
        for (int s = 0; s < n; s++) {
            float *target = reference + (k * (size_t)n + (size_t)s) * d;
            memset(target, 0, d * sizeof(float));
            int targets = 0;
            for (size_t i = 0; i < t; i++) {
                size_t cell = (size_t)s * t + i;
                if (file_mask[cell] == 0 || is_special(file_ids[cell])) continue;
                const float *row = file_hidden[layers[k]] + cell * d;
                for (size_t j = 0; j < d; j++) target[j] += row[j];
                targets++;
            }
            for (size_t j = 0; j < d; j++) target[j] *= 1.0f / (float)targets;
        }
    }
    double worst = 0;
    for (size_t v = 0; v < 3 * (size_t)n; v++) {
        double r = relative_difference(vectors + v * d, reference + v * d, d);
        if (r > worst) worst = r;
    }
    CHECK(worst <= TOLERANCE, "mean vectors differ from the file's by %.3g (relative)", worst);
    printf("embed (mean, layers 0 3 6) against nativemi hidden: largest relative difference %.3g\n", worst);

    float *pooled_default = malloc(embed_size * sizeof(float));
    CHECK(nativemi_embed(model, sentences, (size_t)n, layers, 3, NATIVEMI_POOL_DEFAULT, pooled_default, embed_size) == NATIVEMI_OK &&
              memcmp(pooled_default, vectors, embed_size * sizeof(float)) == 0,
          "the default pool is not mean for minilm");

    /* cls: position 0 of each sentence in the file; layers in another order. */
    const int32_t reversed[2] = {6, 0};
    float *cls = malloc(2 * (size_t)n * d * sizeof(float));
    CHECK(nativemi_embed(model, sentences, (size_t)n, reversed, 2, NATIVEMI_POOL_CLS, cls, 2 * (size_t)n * d) == NATIVEMI_OK, "nativemi_embed cls");
    worst = 0;
    for (size_t k = 0; k < 2; k++)
        for (int s = 0; s < n; s++) {
            double r = relative_difference(cls + (k * (size_t)n + (size_t)s) * d, file_hidden[reversed[k]] + (size_t)s * t * d, d);
            if (r > worst) worst = r;
        }
    CHECK(worst <= TOLERANCE, "cls vectors differ from the file's position 0 by %.3g", worst);

    /* Hidden: T and every state as in the file, zeros past each length. */
    size_t sequence_length = 0;
    CHECK(nativemi_hidden_length(model, sentences, (size_t)n, &sequence_length) == NATIVEMI_OK && sequence_length == t,
          "hidden length %zu, the file's T %zu", sequence_length, t);
    const size_t states_size = entries * (size_t)n * t * d;
    float *states = malloc(states_size * sizeof(float));
    int32_t lengths[MAX_SENTENCES];
    REQUIRE(nativemi_hidden(model, sentences, (size_t)n, states, states_size, lengths, MAX_SENTENCES) == NATIVEMI_OK, "nativemi_hidden");
    worst = 0;
    int zeros_past_length = 1;
    for (size_t e = 0; e < entries; e++) {
        for (int s = 0; s < n; s++) {
            const float *ours = states + ((e * (size_t)n + (size_t)s) * t) * d;
            const float *theirs = file_hidden[e] + (size_t)s * t * d;
            double r = relative_difference(ours, theirs, (size_t)lengths[s] * d);
            if (r > worst) worst = r;
            for (size_t j = (size_t)lengths[s] * d; j < t * d; j++) zeros_past_length &= ours[j] == 0.0f;
        }
    }
    CHECK(worst <= TOLERANCE, "hidden states differ from the file's by %.3g", worst);
    CHECK(zeros_past_length, "hidden states past a sentence's length are not zero");
    for (int s = 0; s < n; s++) {
        int64_t file_length = 0;
        for (size_t i = 0; i < t; i++) file_length += file_mask[(size_t)s * t + i];
        CHECK(lengths[s] == file_length, "sentence %d: length %d, the file's %lld", s, lengths[s], (long long)file_length);
    }
    printf("hidden (7 entries, T = %zu) against nativemi hidden: largest relative difference %.3g\n", t, worst);

    /* Errors. A missing folder is INPUT and names it; the handle is set to NULL. */
    nativemi_model *missing = (nativemi_model *)&info;
    CHECK(nativemi_open("/nonexistent/nativemi-test-model", "cpu", &missing) == NATIVEMI_ERROR_INPUT && missing == NULL, "open of a missing folder");
    CHECK(strstr(nativemi_last_error(), "/nonexistent/nativemi-test-model") != NULL, "the message does not name the folder: %s", nativemi_last_error());
    CHECK(nativemi_last_status() == NATIVEMI_ERROR_INPUT, "last status %d", nativemi_last_status());
    char kept[512];
    snprintf(kept, sizeof kept, "%s", nativemi_last_error());
    /* A failure on another thread leaves this thread's message alone. */
    failing_job other = {0};
    pthread_t failing;
    pthread_create(&failing, NULL, failing_thread, &other);
    pthread_join(failing, NULL);
    CHECK(other.status == NATIVEMI_ERROR_INPUT && strstr(other.message, "other-thread-model") != NULL && other.own_status_after == NATIVEMI_ERROR_INPUT,
          "the other thread's failure: %d %s", other.status, other.message);
    CHECK(strcmp(nativemi_last_error(), kept) == 0, "another thread's failure replaced this thread's message: %s", nativemi_last_error());
    /* A success leaves the last error as it was. */
    CHECK(nativemi_describe(model, &info) == NATIVEMI_OK && strcmp(nativemi_last_error(), kept) == 0, "a success changed the last error");
    CHECK(nativemi_open("minilm", "tpu", &missing) == NATIVEMI_ERROR_USAGE && strstr(nativemi_last_error(), "tpu") != NULL, "an unknown backend");

    /* A buffer too small is USAGE with the size needed, and is left untouched. */
    float guard[64];
    for (int i = 0; i < 64; i++) guard[i] = 12345.0f;
    CHECK(nativemi_embed(model, sentences, (size_t)n, layers, 3, NATIVEMI_POOL_MEAN, guard, 64) == NATIVEMI_ERROR_USAGE, "a too-small out");
    char needed[32];
    snprintf(needed, sizeof needed, "%zu", embed_size);
    CHECK(strstr(nativemi_last_error(), needed) != NULL, "the message does not give the size needed (%s): %s", needed, nativemi_last_error());
    int untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= guard[i] == 12345.0f;
    CHECK(untouched, "a too-small buffer was written to");
    CHECK(nativemi_hidden(model, sentences, (size_t)n, guard, 64, NULL, 0) == NATIVEMI_ERROR_USAGE, "a too-small states buffer");
    untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= guard[i] == 12345.0f;
    CHECK(untouched, "a too-small states buffer was written to");
    int32_t few_ids[2] = {-7, -7};
    size_t count = 0;
    CHECK(nativemi_tokenize(model, sentences[0], few_ids, 2, &count) == NATIVEMI_ERROR_USAGE && count > 2 && few_ids[0] == -7 && few_ids[1] == -7,
          "a too-small ids buffer");

    /* NULL handles and pointers, out-of-range values: USAGE, never a crash. */
    CHECK(nativemi_describe(NULL, &info) == NATIVEMI_ERROR_USAGE, "describe(NULL)");
    CHECK(nativemi_embed(NULL, sentences, (size_t)n, layers, 3, NATIVEMI_POOL_MEAN, vectors, embed_size) == NATIVEMI_ERROR_USAGE, "embed(NULL model)");
    CHECK(nativemi_tokenize(model, NULL, few_ids, 2, &count) == NATIVEMI_ERROR_USAGE, "tokenize(NULL text)");
    CHECK(nativemi_embed(model, NULL, 2, layers, 3, NATIVEMI_POOL_MEAN, vectors, embed_size) == NATIVEMI_ERROR_USAGE, "embed(NULL sentences)");
    const char *with_null[2] = {sentences[0], NULL};
    CHECK(nativemi_embed(model, with_null, 2, layers, 3, NATIVEMI_POOL_MEAN, vectors, embed_size) == NATIVEMI_ERROR_USAGE &&
              strstr(nativemi_last_error(), "sentences[1]") != NULL,
          "a NULL sentence");
    const int32_t bad_layer[1] = {7};
    CHECK(nativemi_embed(model, sentences, 1, bad_layer, 1, NATIVEMI_POOL_MEAN, vectors, embed_size) == NATIVEMI_ERROR_USAGE, "layer 7 of 0..6");
    CHECK(nativemi_embed(model, sentences, 1, layers, 1, (nativemi_pool)9, vectors, embed_size) == NATIVEMI_ERROR_USAGE, "pool 9");
    nativemi_model_info small = {0};
    small.struct_size = 8;
    CHECK(nativemi_describe(model, &small) == NATIVEMI_ERROR_USAGE, "struct_size 8");
    CHECK(nativemi_describe((nativemi_model *)(uintptr_t)987654, &info) == NATIVEMI_ERROR_USAGE, "a made-up handle");
    nativemi_close(NULL);

    /* Two threads, each with its own handle, embed at once: the same vectors as one thread. The same handle from two threads too. */
    embed_job jobs[4];
    pthread_t threads[4];
    for (int j = 0; j < 4; j++) {
        jobs[j] = (embed_job){sentences, (size_t)n, layers, 3, malloc(embed_size * sizeof(float)), embed_size, j < 2 ? NULL : model, NATIVEMI_ERROR_INTERNAL};
        pthread_create(&threads[j], NULL, embed_thread, &jobs[j]);
    }
    for (int j = 0; j < 4; j++) pthread_join(threads[j], NULL);
    for (int j = 0; j < 4; j++) {
        CHECK(jobs[j].status == NATIVEMI_OK, "thread %d: status %d", j, jobs[j].status);
        CHECK(jobs[j].status != NATIVEMI_OK || relative_difference(jobs[j].out, vectors, embed_size) <= 1e-6, "thread %d: vectors differ by %.3g", j,
              relative_difference(jobs[j].out, vectors, embed_size));
        free(jobs[j].out);
    }

    /* Measure: options refused by key, then a tiny run with a progress callback on this thread. */
    char *results = (char *)&info;
    CHECK(nativemi_measure("{\"bogus\": 1}", NULL, NULL, NULL, &results) == NATIVEMI_ERROR_USAGE && results == NULL &&
              strstr(nativemi_last_error(), "bogus") != NULL,
          "an unknown key");
    CHECK(nativemi_measure("{\"epochs\": \"two\"}", NULL, NULL, NULL, &results) == NATIVEMI_ERROR_USAGE && strstr(nativemi_last_error(), "epochs") != NULL,
          "a string for epochs");
    CHECK(nativemi_measure("{\"layers\": [0, 9]}", NULL, NULL, NULL, &results) == NATIVEMI_ERROR_INPUT && strstr(nativemi_last_error(), "9") != NULL,
          "a layer minilm lacks");
    const char *options = "{\"max_sentences\": 200, \"layers\": [0, 6], \"epochs\": 2, \"bootstrap\": 20}";
    progress_state progress = {0};
    progress.caller = pthread_self();
    double started = now_seconds();
    nativemi_status measured = nativemi_measure(options, count_progress, &progress, NULL, &results);
    CHECK(measured == NATIVEMI_OK && results != NULL, "nativemi_measure: %d", measured);
    printf("measure (200 sentences, layers 0 and 6): %.1f s, %d progress calls\n", now_seconds() - started, progress.calls);
    CHECK(progress.calls > 0 && progress.saw_forward, "progress: %d calls, forward seen %d", progress.calls, progress.saw_forward);
    CHECK(!progress.off_thread, "a progress call came on another thread");
    if (measured == NATIVEMI_OK && results != NULL) {
        CHECK(strstr(results, "\"schema\": \"nativemi.measure/2\"") != NULL, "no schema in the results");
        CHECK(strstr(results, "\"layer\": 0") != NULL && strstr(results, "\"layer\": 6") != NULL && strstr(results, "\"layer\": 3") == NULL,
              "the results do not hold layers 0 and 6 alone");
        nativemi_free_string(results);
    }
    nativemi_free_string(NULL);

    /* Cancellation: by the callback's return, by the flag from the callback, by the flag from another thread. */
    progress_state stopper = {0};
    stopper.caller = pthread_self();
    stopper.stop_after = 3;
    CHECK(nativemi_measure(options, count_progress, &stopper, NULL, &results) == NATIVEMI_CANCELLED && results == NULL, "a callback that returns 1");
    CHECK(stopper.calls == 3, "the callback was called %d times; after it asked to stop, never again", stopper.calls);
    CHECK(strstr(nativemi_last_error(), "cancel") != NULL && nativemi_last_status() == NATIVEMI_CANCELLED, "cancellation message: %s", nativemi_last_error());
    volatile int32_t flag = 0;
    progress_state raiser = {0};
    raiser.caller = pthread_self();
    raiser.flag = &flag;
    raiser.raise_at = 2;
    CHECK(nativemi_measure(options, count_progress, &raiser, &flag, &results) == NATIVEMI_CANCELLED, "the flag raised from the callback");
    flag = 0;
    raiser_job later = {&flag, 0.3};
    pthread_t raiser_thread;
    pthread_create(&raiser_thread, NULL, raise_later, &later);
    started = now_seconds();
    CHECK(nativemi_measure("{\"max_sentences\": 2000, \"epochs\": 20}", NULL, NULL, &flag, &results) == NATIVEMI_CANCELLED, "the flag raised from another thread");
    double stopped_after = now_seconds() - started;
    pthread_join(raiser_thread, NULL);
    printf("cancelled from another thread after %.2f s (flag raised at 0.30 s)\n", stopped_after);
    CHECK(stopped_after < 5.0, "cancellation took %.2f s", stopped_after);

    nativemi_close(model);
    CHECK(nativemi_describe(model, &info) == NATIVEMI_ERROR_USAGE, "a closed handle");

    free(vectors);
    free(reference);
    free(pooled_default);
    free(cls);
    free(states);
    printf("%d of %d checks passed\n", checks - failures, checks);
    return failures == 0 ? 0 : 1;
}
