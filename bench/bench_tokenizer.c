/* Tokenizer speed: vocabulary load time, then tokens/s for the ten degradation names and for a few
 * thousand synthetic captions (first pass with an empty word cache, then warm).
 * usage: build/bench/bench_tokenizer [VOCAB] [CAPTIONS.txt]  (captions: one per line; default synthetic) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clip/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const names[10] = {"motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy",
                                      "raindrop", "rainy", "shadowed", "snowy", "uncompleted"};

/* Deterministic varied captions in the style of the DA-CLIP caption CSVs. */
static char **synthetic(int n) {
    static const char *const adj[] = {"a small", "an old", "a red", "a crowded", "a quiet", "two", "a blurry",
                                      "a beautiful", "a wooden", "a snowy"};
    static const char *const noun[] = {"cat", "street", "mountain lake", "kitchen table", "bicycle", "children",
                                       "harbour with boats", "building", "forest path", "plate of food"};
    static const char *const where[] = {"at night", "in the rain", "under a bridge", "next to a window",
                                        "on a sunny day", "in front of a church", "during sunset", "in 1998"};
    char **c = malloc((size_t)n * sizeof *c);
    uint32_t s = 12345;
    for (int i = 0; i < n; i++) {
        c[i] = malloc(160);
        s = s * 1664525u + 1013904223u;
        snprintf(c[i], 160, "%s photo of %s %s %s, with %d people: %s", s % 2 ? "A" : "a", adj[(s >> 8) % 10],
                 noun[(s >> 12) % 10], where[(s >> 16) % 8], (int)((s >> 20) % 50), names[(s >> 24) % 10]);
    }
    return c;
}

static void run(Tokenizer *tok, char **texts, int n, int reps, const char *what) {
    int32_t ids[TOKENIZER_CONTEXT];
    long tokens = 0;
    double t0 = now();
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < n; i++) tokens += tokenizer_tokenize(tok, texts[i], ids);
    double dt = now() - t0;
    printf("%-34s %8d texts x %4d  %9.0f texts/s  %10.0f tokens/s\n", what, n, reps, n * reps / dt, tokens / dt);
}

int main(int argc, char **argv) {
    const char *vocab = argc > 1 ? argv[1] : "data/assets/clip/bpe_simple_vocab_16e6.txt.gz";
    char err[512];
    double t0 = now();
    Tokenizer *tok = tokenizer_load(vocab, err, sizeof err);
    if (!tok) { fprintf(stderr, "%s\n", err); return 1; }
    printf("load %s: %.1f ms (%d ids)\n", vocab, 1e3 * (now() - t0), tokenizer_vocab_size(tok));
    int n = 5000;
    char **caps = NULL;
    if (argc > 2) {
        FILE *f = fopen(argv[2], "r");
        if (!f) { perror(argv[2]); return 1; }
        caps = malloc(sizeof *caps * 1000000);
        char *line = NULL;
        size_t cap = 0;
        n = 0;
        while (n < 1000000 && getline(&line, &cap, f) > 0) { line[strcspn(line, "\n")] = 0; caps[n++] = strdup(line); }
        free(line);
        fclose(f);
    } else {
        caps = synthetic(n);
    }
    run(tok, (char **)names, 10, 1, "degradation names (cold cache)");
    run(tok, (char **)names, 10, 10000, "degradation names (warm)");
    tokenizer_free(tok);
    tok = tokenizer_load(vocab, err, sizeof err);
    run(tok, caps, n, 1, "captions (cold cache)");
    run(tok, caps, n, 20, "captions (warm)");
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps);
    tokenizer_free(tok);
    return 0;
}
