#include "train/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int path_mkdir_p(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return (mkdir(buf, 0755) && errno != EEXIST) ? -1 : 0;
}

char *path_dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) return NULL;
    char *s = strrchr(d, '/');
    if (s == d) s[1] = 0;   /* "/x.csv" -> "/" */
    else if (s) *s = 0;
    else strcpy(d, ".");   /* fits: a non-empty name has room for "." */
    return d;
}

char *path_root_for(const char *root, const char *file) { return root ? strdup(root) : path_dir_of(file); }
