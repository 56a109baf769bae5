/* daclip tokenizer train: learn CLIP-style byte-level BPE merges from a caption corpus. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/bpe_train.h"
#include "train/commands.h"
#include "train/options.h"
#include "train/progress.h"

static const char usage_head[] =
    "usage: daclip tokenizer train --corpus FILE --merges N --out VOCAB.txt.gz\n\n"
    "Learns N byte-level BPE merges from FILE (one caption per line, UTF-8), with the CLIP\n"
    "tokenizer's clean-up and split, and writes them in the format of bpe_simple_vocab_16e6.txt.gz\n"
    "(header line, then one 'a b' merge per line, gzip). Load it with 'daclip tokenize --vocab'.\n"
    "The vocabulary then has 512 + merges + 2 ids (<start_of_text>, <end_of_text> last).\n"
    "Fewer merges are written when no pair of symbols occurs twice any more.\n";

static void on_merge(void *ctx, int done, int total) {
    Progress *p = ctx;
    progress_update(p, done, "of %d", total);
}

static int train(const char *corpus, int merges, const char *out) {
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
    int got = bpe_trainer_learn(bt, merges, on_merge, &p);
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
    const char *corpus = NULL, *out = NULL;
    int merges = 0;
    const OptSpec specs[] = {
        {"--corpus", OPT_STR | OPT_REQUIRED, &corpus, 0, 0, "FILE", "captions, one per line (UTF-8)"},
        {"--merges", OPT_INT | OPT_REQUIRED, &merges, 0, 1000000, "N", "number of merges to learn (0..1000000)"},
        {"--out", OPT_STR | OPT_REQUIRED, &out, 0, 0, "FILE", "the vocabulary to write (.txt.gz)"},
        {0}};
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        opts_usage(stdout, usage_head, specs);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "train"))
        return opts_fail("tokenizer", argc < 2 ? NULL : argv[1], "%s action (the only one is 'train'; see "
                         "'daclip tokenizer --help')", argc < 2 ? "missing" : "unknown");
    /* the action word plays argv[0]'s part: errors read "daclip tokenizer train: --merges: ..." */
    int parsed = opts_parse("tokenizer train", usage_head, specs, argc - 1, argv + 1, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    return train(corpus, merges, out);
}
