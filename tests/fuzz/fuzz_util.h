#ifndef DACLIP_TESTS_FUZZ_UTIL_H
#define DACLIP_TESTS_FUZZ_UTIL_H
/* libFuzzer targets (make fuzz): the readers take paths, so each input is written to one per-process file in
 * /dev/shm (memory, not disk) under the extension the reader expects. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_file(const uint8_t *data, size_t n, const char *ext) {
    static char path[128];
    snprintf(path, sizeof path, "/dev/shm/daclip-fuzz-%d%s", (int)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

#endif
