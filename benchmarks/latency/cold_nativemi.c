/*
 * Cold start of libnativemi.so: the time from this program's start to the first pooled vector of a built-in model
 * (mean pooling at the last layer), with the model already imported into the cache. The library is dlopen'ed, so
 * its load is timed too. Prints one line of phase times in milliseconds:
 *
 *   cold_nativemi LIBNATIVEMI.SO MODEL "SENTENCE"
 *   -> dlopen_ms=... open_ms=... first_embed_ms=... second_embed_ms=... total_ms=... cpu_ms=... vector0=...
 *
 * total_ms runs from main() to the end of the first embed and cpu_ms is the CPU time of all threads until then; the
 * harness (`latency` in NativeMi.Benchmarks) also times the process from fork to exit. second_embed_ms is a warm call,
 * for comparison with the first.
 */
#define _POSIX_C_SOURCE 200809L
#include "nativemi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* CPU time of the process so far (every thread, user and system), in ms. */
static double cpu_ms(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 + (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

typedef nativemi_status (*open_fn)(const char *, const char *, nativemi_model **);
typedef nativemi_status (*describe_fn)(nativemi_model *, nativemi_model_info *);
typedef nativemi_status (*embed_fn)(nativemi_model *, const char *const *, size_t, const int32_t *, size_t, nativemi_pool, float *, size_t);
typedef const char *(*last_error_fn)(void);
typedef void (*close_fn)(nativemi_model *);

int main(int argc, char **argv) {
    double start = now_ms();
    if (argc != 4) {
        fprintf(stderr, "usage: %s LIBNATIVEMI.SO MODEL SENTENCE\n", argv[0]);
        return 2;
    }
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 4;
    }
    open_fn open_model = (open_fn)dlsym(library, "nativemi_open");
    describe_fn describe = (describe_fn)dlsym(library, "nativemi_describe");
    embed_fn embed = (embed_fn)dlsym(library, "nativemi_embed");
    last_error_fn last_error = (last_error_fn)dlsym(library, "nativemi_last_error");
    close_fn close_model = (close_fn)dlsym(library, "nativemi_close");
    if (!open_model || !describe || !embed || !last_error || !close_model) {
        fprintf(stderr, "a nativemi_ symbol is missing from %s\n", argv[1]);
        return 4;
    }
    double loaded = now_ms();

    nativemi_model *model = NULL;
    if (open_model(argv[2], "cpu", &model) != NATIVEMI_OK) {
        fprintf(stderr, "nativemi_open: %s\n", last_error());
        return 3;
    }
    double opened = now_ms();

    nativemi_model_info info = {.struct_size = sizeof(nativemi_model_info)};
    if (describe(model, &info) != NATIVEMI_OK) {
        fprintf(stderr, "nativemi_describe: %s\n", last_error());
        return 1;
    }
    const char *sentences[1] = {argv[3]};
    int32_t layer = info.layers; /* the last block: the sentence vector */
    float *vector = malloc(sizeof(float) * (size_t)info.width);
    double before = now_ms();
    if (embed(model, sentences, 1, &layer, 1, NATIVEMI_POOL_MEAN, vector, (size_t)info.width) != NATIVEMI_OK) {
        fprintf(stderr, "nativemi_embed: %s\n", last_error());
        return 1;
    }
    double embedded = now_ms(), cpu = cpu_ms();
    if (embed(model, sentences, 1, &layer, 1, NATIVEMI_POOL_MEAN, vector, (size_t)info.width) != NATIVEMI_OK) {
        fprintf(stderr, "nativemi_embed: %s\n", last_error());
        return 1;
    }
    double second = now_ms();
    printf("dlopen_ms=%.3f open_ms=%.3f first_embed_ms=%.3f second_embed_ms=%.3f total_ms=%.3f cpu_ms=%.3f vector0=%.6f\n",
           loaded - start, opened - loaded, embedded - before, second - embedded, embedded - start, cpu, vector[0]);
    fflush(stdout);
    close_model(model);
    free(vector);
    return 0;
}
