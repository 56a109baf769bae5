/* daclip version: the version and the build configuration. */
#include <stdio.h>
#include "train/commands.h"
#include "train/options.h"

int cmd_version(int argc, char **argv) {
    const OptSpec specs[] = {{0}};
    int parsed = opts_parse("version", "usage: daclip version\n\nPrints the version and how this binary was built.\n",
                            specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    printf("daclip 0.1.0\n");
#ifdef _OPENMP
    printf("openmp: %d\n", _OPENMP);
#else
    printf("openmp: off\n");
#endif
#if defined(__AVX512F__)
    printf("baseline isa: avx512f\n");
#elif defined(__AVX2__)
    printf("baseline isa: avx2\n");
#else
    printf("baseline isa: portable (hot kernels dispatch at run time)\n");
#endif
    return 0;
}
