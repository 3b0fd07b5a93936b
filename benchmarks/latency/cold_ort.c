/*
 * Cold start of ONNX Runtime, for comparison with cold_nativemi.c: from this program's start to the first pooled vector
 * of the same ONNX model (the built-in model's original model.onnx), through ORT's C API with its default session options.
 * ORT has no tokenizer, so the token ids come on the command line (the harness tokenises the sentence with the model's
 * tokenizer); the vector is the mean of last_hidden_state over the text tokens (every position but the first and the last,
 * [CLS] and [SEP]), as nativemi's mean pooling. Prints one line of phase times in milliseconds:
 *
 *   cold_ort LIBONNXRUNTIME.SO MODEL.ONNX ID [ID ...]
 *   -> dlopen_ms=... env_ms=... session_ms=... first_run_ms=... second_run_ms=... total_ms=... cpu_ms=... vector0=...
 *
 * Built against onnxruntime_c_api.h of the Microsoft.ML.OnnxRuntime package the benchmarks use.
 */
#define _POSIX_C_SOURCE 200809L
#include "onnxruntime_c_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const OrtApi *api;

static void check(OrtStatus *status, const char *what) {
    if (status == NULL) return;
    fprintf(stderr, "%s: %s\n", what, api->GetErrorMessage(status));
    api->ReleaseStatus(status);
    exit(1);
}

/* One forward pass at batch 1; returns the pooled first element and writes the pooled vector to pooled (width floats). */
static void run_once(OrtSession *session, size_t input_count, char **input_names, OrtValue **inputs, const char *output_name, int64_t t,
                     float *pooled, int64_t *width) {
    OrtValue *output = NULL;
    check(api->Run(session, NULL, (const char *const *)input_names, (const OrtValue *const *)inputs, input_count, &output_name, 1, &output),
          "Run");
    OrtTensorTypeAndShapeInfo *shape;
    check(api->GetTensorTypeAndShape(output, &shape), "GetTensorTypeAndShape");
    int64_t dims[3];
    check(api->GetDimensions(shape, dims, 3), "GetDimensions");
    api->ReleaseTensorTypeAndShapeInfo(shape);
    float *states;
    check(api->GetTensorMutableData(output, (void **)&states), "GetTensorMutableData");
    int64_t d = dims[2];
    *width = d;
    for (int64_t j = 0; j < d; j++) pooled[j] = 0;
    for (int64_t i = 1; i < t - 1; i++)
        for (int64_t j = 0; j < d; j++) pooled[j] += states[i * d + j];
    for (int64_t j = 0; j < d; j++) pooled[j] /= (float)(t - 2);
    api->ReleaseValue(output);
}

int main(int argc, char **argv) {
    double start = now_ms();
    if (argc < 5) {
        fprintf(stderr, "usage: %s LIBONNXRUNTIME.SO MODEL.ONNX ID ID [ID ...]\n", argv[0]);
        return 2;
    }
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 4;
    }
    const OrtApiBase *(*get_api_base)(void) = (const OrtApiBase *(*)(void))dlsym(library, "OrtGetApiBase");
    if (get_api_base == NULL) {
        fprintf(stderr, "OrtGetApiBase is missing from %s\n", argv[1]);
        return 4;
    }
    api = get_api_base()->GetApi(ORT_API_VERSION);
    if (api == NULL) {
        fprintf(stderr, "%s does not offer ORT API version %d\n", argv[1], ORT_API_VERSION);
        return 4;
    }
    double loaded = now_ms();

    OrtEnv *env;
    check(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "cold_ort", &env), "CreateEnv");
    double env_done = now_ms();
    OrtSessionOptions *options;
    check(api->CreateSessionOptions(&options), "CreateSessionOptions");
    OrtSession *session;
    check(api->CreateSession(env, argv[2], options, &session), "CreateSession");
    double session_done = now_ms();

    int64_t t = argc - 3;
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)t), *mask = malloc(sizeof(int64_t) * (size_t)t), *types = calloc((size_t)t, sizeof(int64_t));
    for (int64_t i = 0; i < t; i++) {
        ids[i] = strtoll(argv[3 + i], NULL, 10);
        mask[i] = 1;
    }
    OrtAllocator *allocator;
    check(api->GetAllocatorWithDefaultOptions(&allocator), "GetAllocatorWithDefaultOptions");
    size_t input_count;
    check(api->SessionGetInputCount(session, &input_count), "SessionGetInputCount");
    char *input_names[8];
    OrtValue *inputs[8];
    OrtMemoryInfo *memory;
    check(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory), "CreateCpuMemoryInfo");
    int64_t shape[2] = {1, t};
    for (size_t i = 0; i < input_count && i < 8; i++) {
        check(api->SessionGetInputName(session, i, allocator, &input_names[i]), "SessionGetInputName");
        int64_t *data = strcmp(input_names[i], "input_ids") == 0 ? ids : strcmp(input_names[i], "attention_mask") == 0 ? mask : types;
        check(api->CreateTensorWithDataAsOrtValue(memory, data, sizeof(int64_t) * (size_t)t, shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
                                                  &inputs[i]),
              "CreateTensorWithDataAsOrtValue");
    }
    float pooled[4096];
    int64_t width = 0;
    double before = now_ms();
    run_once(session, input_count, input_names, inputs, "last_hidden_state", t, pooled, &width);
    double first = now_ms(), cpu = cpu_ms();
    run_once(session, input_count, input_names, inputs, "last_hidden_state", t, pooled, &width);
    double second = now_ms();
    printf("dlopen_ms=%.3f env_ms=%.3f session_ms=%.3f first_run_ms=%.3f second_run_ms=%.3f total_ms=%.3f cpu_ms=%.3f vector0=%.6f\n",
           loaded - start, env_done - loaded, session_done - env_done, first - before, second - first, first - start, cpu, pooled[0]);
    fflush(stdout);
    for (size_t i = 0; i < input_count && i < 8; i++) {
        api->ReleaseValue(inputs[i]);
        allocator->Free(allocator, input_names[i]);
    }
    api->ReleaseMemoryInfo(memory);
    api->ReleaseSession(session);
    api->ReleaseSessionOptions(options);
    api->ReleaseEnv(env);
    free(ids);
    free(mask);
    free(types);
    return 0;
}
