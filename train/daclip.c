/* daclip: git-style command-line front end. Each subcommand is one file, train/cmd_<name>.c,
 * registered in train/commands.def. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/tensor.h"
#include "train/commands.h"
#include "train/options.h"

typedef struct { const char *name; int (*fn)(int, char **); const char *summary; } Command;
static const Command commands[] = {
#define CMD(name, fn, summary) {name, fn, summary},
#include "train/commands.def"
#undef CMD
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: daclip <command> [options]\n\n"
               "DA-CLIP and IR-SDE image restoration, in C.\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'daclip <command> --help' describes one command.\n"
               "Threads: DACLIP_THREADS (else OMP_NUM_THREADS) sets OpenMP and OpenBLAS together.\n");
}

/* The library only reports errors (tensor/tensor.h); a command ends on one unless it installs its own
 * handler around work it can recover from. */
static void print_and_exit(const char *msg) {
    fflush(stdout);
    fprintf(stderr, "daclip: error: %s\n", msg);
    exit(1);
}

int main(int argc, char **argv) {
    t_set_error_handler(print_and_exit);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return out_close_stdout(NULL) || argc < 2 ? 1 : 0;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            /* a lost write to stdout is a failure, whichever command printed (idempotent if it checked itself) */
            return out_close_stdout(commands[i].name) && rc == 0 ? 1 : rc;
        }
    fprintf(stderr, "daclip: '%s' is not a command. See 'daclip --help'.\n", argv[1]);
    return 1;
}
