/* daclip tokenize: print the 77 CLIP token ids of each text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/tokenizer.h"
#include "train/clip_io.h"
#include "train/commands.h"

#define DEFAULT_VOCAB clip_default_vocab()   /* the shipped official vocabulary (data/assets/clip/) */

static void usage(FILE *f) {
    fprintf(f, "usage: daclip tokenize [--vocab FILE] [--context N] TEXT...\n\n"
               "Prints each TEXT's CLIP token ids (<start_of_text> ... <end_of_text>, zero-padded to N = 77)\n"
               "on one line, space-separated. TEXT '-' reads one text per line from stdin.\n"
               "Vocabulary: --vocab, else $DACLIP_VOCAB, else %s.\n"
               "Note: ftfy.fix_text of the Python tokenizer is not reproduced (see clip/tokenizer.h).\n",
            DEFAULT_VOCAB);
}

static int print_ids(Tokenizer *tok, const char *text, int32_t *ids, int ctx) {
    if (tokenizer_tokenize_n(tok, text, ids, ctx) < 0) {
        fprintf(stderr, "daclip tokenize: out of memory\n");
        return 1;
    }
    for (int i = 0; i < ctx; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL;
    int ctx = TOKENIZER_CONTEXT, first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(argv[i], "--context") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 20) {
                fprintf(stderr, "daclip tokenize: --context wants a positive integer, got '%s'\n", argv[i]);
                return 1;
            }
            ctx = (int)v;
        } else if (!strcmp(argv[i], "--")) { first = i + 1; break; }
        else if (argv[i][0] == '-' && argv[i][1] && argv[i][1] == '-') {
            fprintf(stderr, "daclip tokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 1;
        } else { first = i; break; }
    }
    if (first >= argc) { usage(stderr); return 1; }
    if (!vocab) vocab = getenv("DACLIP_VOCAB");
    if (!vocab || !*vocab) {
        if (access(DEFAULT_VOCAB, R_OK) != 0) {
            fprintf(stderr, "daclip tokenize: no vocabulary: pass --vocab FILE (bpe_simple_vocab_16e6.txt.gz or a\n"
                            "file from 'daclip tokenizer train'), or set DACLIP_VOCAB (%s not found)\n", DEFAULT_VOCAB);
            return 1;
        }
        vocab = DEFAULT_VOCAB;
    }
    char err[512];
    Tokenizer *tok = tokenizer_load(vocab, err, sizeof err);
    if (!tok) { fprintf(stderr, "daclip tokenize: %s\n", err); return 1; }
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    int rc = ids ? 0 : 1;
    for (int i = first; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "-")) { rc = print_ids(tok, argv[i], ids, ctx); continue; }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
            if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
            rc = print_ids(tok, line, ids, ctx);
        }
        free(line);
    }
    free(ids);
    tokenizer_free(tok);
    return rc;
}
