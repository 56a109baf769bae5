/* daclip tokenize: print the 77 CLIP token ids of each text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/tokenizer.h"
#include "train/clip_io.h"
#include "train/commands.h"
#include "train/options.h"

#define DEFAULT_VOCAB clip_default_vocab()   /* the shipped official vocabulary (data/assets/clip/) */

static const char usage_fmt[] =
    "usage: daclip tokenize [--vocab FILE] [--context N] TEXT...\n\n"
    "Prints each TEXT's CLIP token ids (<start_of_text> ... <end_of_text>, zero-padded to N = 77)\n"
    "on one line, space-separated. TEXT '-' reads one text per line from stdin; texts that start with\n"
    "'-' go after --. Vocabulary: --vocab, else $DACLIP_VOCAB, else %s.\n"
    "Note: ftfy.fix_text of the Python tokenizer is not reproduced (see clip/tokenizer.h).\n";

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
    int ctx = TOKENIZER_CONTEXT;
    const OptSpec specs[] = {
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges: bpe_simple_vocab_16e6.txt.gz or a file from\n'daclip tokenizer train'"},
        {"--context", OPT_INT, &ctx, 1, 1 << 20, "N", "ids per text, padded or cut (default 77)"},
        {0}};
    char head[sizeof usage_fmt + 4096];
    snprintf(head, sizeof head, usage_fmt, DEFAULT_VOCAB);
    char **texts;
    int n_texts;
    int parsed = opts_parse("tokenize", head, specs, argc, argv, &texts, &n_texts);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (n_texts == 0) return opts_fail("tokenize", NULL, "no TEXT given; see 'daclip tokenize --help'");
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
    for (int i = 0; i < n_texts && rc == 0; i++) {
        if (strcmp(texts[i], "-")) { rc = print_ids(tok, texts[i], ids, ctx); continue; }
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
    if (out_close_stdout("tokenize")) rc = 1;
    return rc;
}
