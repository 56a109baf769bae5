/* Finding data/assets/ relative to the running binary rather than the working directory, so that defaults (the
 * vocabulary, the inpainting masks) are the same wherever a command runs. */
#include "data/assets.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Folder holding the running binary (no trailing slash) into dir; 0, or -1 when /proc/self/exe is unreadable. */
static int binary_dir(char *dir, size_t n) {
    if (n < 2) return -1;
    ssize_t len = readlink("/proc/self/exe", dir, n - 1);
    if (len <= 0 || (size_t)len >= n - 1) return -1;
    dir[len] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) return -1;
    if (slash == dir) slash[1] = 0;   /* binary in "/" */
    else *slash = 0;
    return 0;
}

/* Writes base/rel into buf; 1 if it fits and exists (buf then canonical, without "..", when that fits), 0
 * otherwise. The first candidate is remembered in first. */
static int try_candidate(const char *base, const char *rel, char *buf, size_t n, char *first, size_t first_n) {
    int w = snprintf(buf, n, "%s/%s", base, rel);
    if (w < 0 || (size_t)w >= n) return 0;
    if (!first[0]) snprintf(first, first_n, "%s", buf);
    if (access(buf, R_OK) != 0) return 0;
    char *canon = realpath(buf, NULL);
    if (canon && strlen(canon) < n) strcpy(buf, canon);
    free(canon);
    return 1;
}

const char *daclip_asset_path(const char *rel, char *buf, size_t n) {
    if (!buf || n == 0) return NULL;
    buf[0] = 0;
    if (!rel) return NULL;
    char first[4096] = "";
    const char *env = getenv("DACLIP_ASSETS");
    if (env && *env) {
        if (try_candidate(env, rel, buf, n, first, sizeof first)) return buf;
    } else {
        char bin[4096], base[4200];
        if (binary_dir(bin, sizeof bin) == 0) {
            static const char *const UP[] = {"/../data/assets", "/../../data/assets", "/../share/daclip/assets"};
            for (size_t i = 0; i < sizeof UP / sizeof UP[0]; i++) {
                snprintf(base, sizeof base, "%s%s", bin, UP[i]);
                if (try_candidate(base, rel, buf, n, first, sizeof first)) return buf;
            }
        }
        if (try_candidate("./data/assets", rel, buf, n, first, sizeof first)) return buf;
    }
    snprintf(buf, n, "%s", first);
    return NULL;
}
