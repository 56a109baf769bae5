/* Safe inputs and atomic outputs; see file_io.h. */
#include "data/file_io.h"
#include "data/image.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

FILE *data_open_regular(const char *path, int64_t max_bytes, int64_t *size) {
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever before fstat can refuse it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        data_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        data_set_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        data_set_error("%s: not a regular file (%s)", path,
                       S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO, which may never end"
                       : S_ISCHR(st.st_mode) ? "a device, which may never end" : "a special file");
        close(fd);
        return NULL;
    }
    if (max_bytes > 0 && (int64_t)st.st_size > max_bytes) {
        data_set_error("%s: %lld bytes, above the %lld-byte limit for this kind of file", path,
                       (long long)st.st_size, (long long)max_bytes);
        close(fd);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        data_set_error("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (size) *size = (int64_t)st.st_size;
    return f;
}

/* ---- atomic outputs ---- */

static void out_free(DataOutFile *o) {
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    o->fp = NULL;
}

/* Creates the temporary next to `target` with O_EXCL (the mode honours the umask, unlike mkstemp's 0600). */
static int create_temp(DataOutFile *o, const char *target) {
    static atomic_uint counter;
    size_t n = strlen(target) + 48;
    if (!(o->tmp = malloc(n))) return -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned k = atomic_fetch_add(&counter, 1);
        uint64_t r = data_hash64((uint64_t)time(NULL) << 32 ^ (uint64_t)k << 8 ^ (uint64_t)attempt ^
                                 (uint64_t)(uintptr_t)o);
        snprintf(o->tmp, n, "%s.tmp.%ld.%06llx", target, (long)getpid(), (unsigned long long)(r & 0xFFFFFF));
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return -1;
        if (!(o->fp = fdopen(fd, "wb"))) {
            int e = errno;
            close(fd);
            unlink(o->tmp);
            errno = e;
            return -1;
        }
        return 0;
    }
    errno = EEXIST;
    return -1;
}

int data_out_open(DataOutFile *o, const char *path) {
    memset(o, 0, sizeof *o);
    struct stat st;
    const char *target = path;
    char resolved[PATH_MAX];
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, resolved))
        target = resolved;   /* replace the file the link points to, keep the link */
    if (!(o->path = strdup(target))) {
        data_set_error("%s: out of memory", path);
        return -1;
    }
    if (stat(target, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) {
            data_set_error("%s: is a folder", path);
            out_free(o);
            return -1;
        }
        /* a device or FIFO (/dev/stdout, /dev/full): nothing to replace, write straight to it */
        if (!(o->fp = fopen(target, "wb"))) {
            data_set_error("%s: cannot open for writing: %s", path, strerror(errno));
            out_free(o);
            return -1;
        }
        return 0;
    }
    if (create_temp(o, target)) {
        data_set_error("%s: cannot create a temporary file next to it: %s", path, strerror(errno));
        out_free(o);
        return -1;
    }
    return 0;
}

int data_out_commit(DataOutFile *o) {
    if (!o->fp) {
        data_set_error("%s: not open for writing", o->path ? o->path : "(output)");
        data_out_abort(o);
        return -1;
    }
    /* ferror catches a write that failed earlier although the final flush succeeded */
    int bad = fflush(o->fp) != 0 || ferror(o->fp);
    int err = errno;
    if (fclose(o->fp) != 0 && !bad) bad = 1, err = errno;
    o->fp = NULL;
    if (!bad && o->tmp && rename(o->tmp, o->path) != 0) bad = 1, err = errno;
    if (bad) {
        data_set_error("%s: write error: %s%s", o->path, strerror(err ? err : EIO),
                       o->tmp ? " (the previous file, if any, is untouched)" : "");
        if (o->tmp) unlink(o->tmp);
        out_free(o);
        return -1;
    }
    out_free(o);
    return 0;
}

void data_out_abort(DataOutFile *o) {
    if (o->fp) fclose(o->fp);
    if (o->tmp) unlink(o->tmp);
    out_free(o);
}
