/* daclip tokenizer train: learn CLIP-style byte-level BPE merges from a caption corpus. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/bpe_train.h"
#include "train/commands.h"
#include "train/progress.h"

static void usage(FILE *f) {
    fprintf(f, "usage: daclip tokenizer train --corpus FILE --merges N --out VOCAB.txt.gz\n\n"
               "Learns N byte-level BPE merges from FILE (one caption per line, UTF-8), with the CLIP\n"
               "tokenizer's clean-up and split, and writes them in the format of bpe_simple_vocab_16e6.txt.gz\n"
               "(header line, then one 'a b' merge per line, gzip). Load it with 'daclip tokenize --vocab'.\n"
               "The vocabulary then has 512 + merges + 2 ids (<start_of_text>, <end_of_text> last).\n"
               "Fewer merges are written when no pair of symbols occurs twice any more.\n");
}

static void on_merge(void *ctx, int done, int total) {
    Progress *p = ctx;
    progress_update(p, done, "of %d", total);
}

static int train(const char *corpus, long merges, const char *out) {
    FILE *f = fopen(corpus, "rb");
    if (!f) { fprintf(stderr, "daclip tokenizer: %s: %s\n", corpus, strerror(errno)); return 1; }
    BpeTrainer *bt = bpe_trainer_new();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t lines = 0;
    int rc = bt ? 0 : 1;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
        if (!line[0]) continue;
        if (bpe_trainer_add_text(bt, line)) rc = 1;
        lines++;
    }
    if (ferror(f)) { fprintf(stderr, "daclip tokenizer: %s: read error\n", corpus); rc = 1; }
    free(line);
    fclose(f);
    if (rc) { fprintf(stderr, "daclip tokenizer: out of memory reading %s\n", corpus); bpe_trainer_free(bt); return 1; }
    fprintf(stderr, "%s: %lld captions, %lld pieces, %lld distinct\n", corpus, (long long)lines,
            (long long)bpe_trainer_n_pieces(bt), (long long)bpe_trainer_n_unique(bt));
    Progress p;
    progress_begin(&p, "bpe", merges, "merge");
    int got = bpe_trainer_learn(bt, (int)merges, on_merge, &p);
    progress_end(&p);
    char err[512];
    if (got < 0) { fprintf(stderr, "daclip tokenizer: out of memory while learning merges\n"); rc = 1; }
    else if (bpe_trainer_save(bt, out, err, sizeof err)) { fprintf(stderr, "daclip tokenizer: %s\n", err); rc = 1; }
    else
        fprintf(stderr, "%s: %d merges%s, vocabulary %d ids\n", out, got,
                got < merges ? " (no pair occurs twice any more)" : "", 512 + got + 2);
    bpe_trainer_free(bt);
    return rc;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(argc < 2 ? stderr : stdout); return argc < 2; }
    if (strcmp(argv[1], "train")) {
        fprintf(stderr, "daclip tokenizer: unknown action '%s' (only 'train')\n", argv[1]);
        return 1;
    }
    const char *corpus = NULL, *out = NULL;
    long merges = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "daclip tokenizer: '%s' needs a value\n", argv[i]); return 1; }
        if (!strcmp(argv[i], "--corpus")) corpus = argv[++i];
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--merges")) {
            char *end;
            merges = strtol(argv[++i], &end, 10);
            if (*end || merges < 0 || merges > 1000000) {
                fprintf(stderr, "daclip tokenizer: --merges wants 0..1000000, got '%s'\n", argv[i]);
                return 1;
            }
        } else { fprintf(stderr, "daclip tokenizer: unknown option '%s'\n", argv[i]); usage(stderr); return 1; }
    }
    if (!corpus || !out || merges < 0) { usage(stderr); return 1; }
    return train(corpus, merges, out);
}
