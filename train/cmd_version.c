#include <stdio.h>
#include <string.h>
#include "train/commands.h"

int cmd_version(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: daclip version\n\nPrints the version and how this binary was built.\n");
        return 0;
    }
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
