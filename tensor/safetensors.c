/* safetensors: u64 LE header length N, N bytes of JSON header, then the data buffer. The header maps
 * each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} relative to the data buffer, plus
 * an optional "__metadata__" object of strings. Reading trusts nothing: every length and offset is
 * checked against the file size before a byte of data is touched. */
#include "tensor/safetensors.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tensor/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads F32 data in place and assumes a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we (a corrupt length is caught early). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

/* ------------------------------------------------------------------ header records */

typedef enum { DT_NONE, DT_F32, DT_F16, DT_BF16 } DType;

typedef struct {
    char *name;
    char *dtype_str;
    DType dtype;
    int ndim;
    int64_t shape[T_MAX_DIMS];
    int64_t begin, end;
    bool has_dtype, has_shape, has_offsets;
} Rec;

typedef struct {
    Rec *recs;
    int n, cap;
    const char *meta_begin, *meta_end;   /* the __metadata__ object's text */
} Header;

/* A field given twice would silently take the last value; the reference reader refuses it, so do we. */
static bool once(JsonReader *j, bool *seen, const char *field_error) {
    if (*seen) return json_fail(j, field_error);
    *seen = true;
    return true;
}

static bool rec_member(JsonReader *j, const char *key, void *ctx) {
    Rec *r = ctx;
    if (!strcmp(key, "dtype")) {
        if (!once(j, &r->has_dtype, "duplicate field \"dtype\"")) return false;
        return json_string(j, &r->dtype_str);
    }
    if (!strcmp(key, "shape")) {
        if (!once(j, &r->has_shape, "duplicate field \"shape\"")) return false;
        if (!json_expect(j, '[', "shape: expected '['")) return false;
        if (json_peek(j, ']')) { j->s++; return true; }
        for (;;) {
            int64_t d;
            if (!json_uint(j, &d)) return false;
            if (r->ndim == T_MAX_DIMS) return json_fail(j, "shape has more than 6 dimensions");
            r->shape[r->ndim++] = d;
            if (json_peek(j, ',')) { j->s++; continue; }
            return json_expect(j, ']', "shape: expected ',' or ']'");
        }
    }
    if (!strcmp(key, "data_offsets")) {
        if (!once(j, &r->has_offsets, "duplicate field \"data_offsets\"")) return false;
        return json_expect(j, '[', "data_offsets: expected '['") && json_uint(j, &r->begin) &&
               json_expect(j, ',', "data_offsets: expected two integers") && json_uint(j, &r->end) &&
               json_expect(j, ']', "data_offsets: expected two integers");
    }
    return json_skip(j);
}

static bool header_member(JsonReader *j, const char *key, void *ctx) {
    Header *h = ctx;
    if (!strcmp(key, "__metadata__")) {
        if (h->meta_begin) return json_fail(j, "duplicate \"__metadata__\"");
        /* checked as an object of strings by json_object_parse once the header is read */
        if (!json_peek(j, '{')) return json_fail(j, "__metadata__ must be an object of strings");
        h->meta_begin = j->s;
        if (!json_skip(j)) return false;
        h->meta_end = j->s;
        return true;
    }
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 16;
        Rec *nr = realloc(h->recs, sizeof(Rec) * (size_t)cap);
        if (!nr) return json_fail(j, "out of memory");
        h->recs = nr, h->cap = cap;
    }
    Rec *r = &h->recs[h->n++];
    memset(r, 0, sizeof *r);
    r->name = strdup(key);
    if (!r->name) return json_fail(j, "out of memory");
    return json_object(j, rec_member, r);
}

static void header_free(Header *h) {
    for (int i = 0; i < h->n; i++) free(h->recs[i].name), free(h->recs[i].dtype_str);
    free(h->recs);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns the first duplicated name among n, or NULL. */
static const char *first_duplicate(int n, const char *const *names) {
    if (n < 2) return NULL;
    const char **sorted = malloc(sizeof(char *) * (size_t)n);
    if (!sorted) return NULL;
    memcpy(sorted, names, sizeof(char *) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(char *), cmp_str_ptr);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (!strcmp(sorted[i - 1], sorted[i])) dup = sorted[i];
    free(sorted);
    return dup;
}

/* ------------------------------------------------------------------ reading */

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | man << 13;                /* inf / nan */
    } else if (exp) {
        bits = sign | (exp + 112) << 23 | man << 13;          /* normal: rebias 15 -> 127 */
    } else if (man) {                                         /* subnormal: normalise */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3FF) << 13;
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static const char *dtype_parse(const char *s, DType *dt, int *size) {
    if (!strcmp(s, "F32")) { *dt = DT_F32; *size = 4; return NULL; }
    if (!strcmp(s, "F16")) { *dt = DT_F16; *size = 2; return NULL; }
    if (!strcmp(s, "BF16")) { *dt = DT_BF16; *size = 2; return NULL; }
    return "unknown dtype";
}

/* Frees a half-built file; the message is already in t_errmsg(). */
static StFile *st_fail(StFile *f, Header *h) {
    if (h) header_free(h);
    st_close(f);
    return NULL;
}

static int cmp_rec_offsets(const void *a, const void *b) {
    const Rec *x = *(const Rec *const *)a, *y = *(const Rec *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The tensors tile the data buffer exactly, in some order: no overlaps, no gaps, nothing after the last
 * one (the reference reader's rule; anything else is a damaged or hand-made file). */
static int check_layout(const char *path, const Header *h, uint64_t data_size) {
    const Rec **by_offset = malloc(sizeof(Rec *) * (h->n > 0 ? (size_t)h->n : 1));
    if (!by_offset) {
        t_set_errmsg("%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < h->n; i++) by_offset[i] = &h->recs[i];
    if (h->n > 1) qsort(by_offset, (size_t)h->n, sizeof(Rec *), cmp_rec_offsets);
    uint64_t pos = 0;
    int rc = 0;
    for (int i = 0; i < h->n && !rc; i++) {
        const Rec *r = by_offset[i];
        if ((uint64_t)r->begin != pos) {
            t_set_errmsg("%s: tensor '%s': data_offsets [%lld, %lld] %s the previous tensor, which ends at %llu",
                         path, r->name, (long long)r->begin, (long long)r->end,
                         (uint64_t)r->begin < pos ? "overlap" : "leave a gap after", (unsigned long long)pos);
            rc = -1;
        }
        pos = (uint64_t)r->end;
    }
    if (!rc && pos != data_size) {
        t_set_errmsg("%s: the tensors cover %llu bytes of a %llu-byte data buffer (trailing bytes)", path,
                     (unsigned long long)pos, (unsigned long long)data_size);
        rc = -1;
    }
    free(by_offset);
    return rc;
}

StFile *st_open(const char *path) {
    StFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        t_set_errmsg("%s: out of memory", path);
        return NULL;
    }
    /* O_NONBLOCK: a FIFO is refused by the check below instead of blocking the open until a writer comes */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        t_set_errmsg("%s: cannot open: %s", path, strerror(errno));
        return st_fail(f, NULL);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        t_set_errmsg("%s: not a regular file%s", path, S_ISFIFO(sb.st_mode) ? " (a FIFO)" : "");
        close(fd);
        return st_fail(f, NULL);
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        t_set_errmsg("%s: truncated: %llu bytes, too short for the 8-byte header length", path,
                     (unsigned long long)size);
        close(fd);
        return st_fail(f, NULL);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        t_set_errmsg("%s: mmap failed: %s", path, strerror(errno));
        return st_fail(f, NULL);
    }
    f->map = map, f->map_len = (size_t)size;
    const unsigned char *bytes = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];
    if (hlen > size - 8) {
        t_set_errmsg("%s: header length %llu runs past the end of the file (%llu bytes): truncated or not a "
                     "safetensors file", path, (unsigned long long)hlen, (unsigned long long)size);
        return st_fail(f, NULL);
    }
    if (hlen > ST_MAX_HEADER) {
        t_set_errmsg("%s: header length %llu exceeds the 100 MB limit", path, (unsigned long long)hlen);
        return st_fail(f, NULL);
    }
    const char *hs = (const char *)bytes + 8;
    const unsigned char *data = bytes + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;

    Header h = {0};
    JsonReader j;
    json_reader_init(&j, hs, (size_t)hlen);
    if (!json_object(&j, header_member, &h) || !json_at_end(&j)) {
        if (!j.err) json_fail(&j, "trailing characters after the header object");
        t_set_errmsg("%s: malformed JSON header at byte %zu: %s", path, json_offset(&j) + 8, j.err);
        return st_fail(f, &h);
    }
    if (h.meta_begin) {
        JsonObject meta = {0};
        if (json_object_parse(&meta, h.meta_begin, (size_t)(h.meta_end - h.meta_begin))) {
            char why[256];
            snprintf(why, sizeof why, "%s", t_errmsg());
            t_set_errmsg("%s: malformed __metadata__ (the object at file byte %zu, its %s)", path,
                         (size_t)(h.meta_begin - hs) + 8, why);
            return st_fail(f, &h);
        }
        json_object_free(&meta);
    }
    const char **names = malloc(sizeof(char *) * (size_t)(h.n ? h.n : 1));
    if (!names) { t_set_errmsg("%s: out of memory", path); return st_fail(f, &h); }
    for (int i = 0; i < h.n; i++) names[i] = h.recs[i].name;
    const char *dup = first_duplicate(h.n, names);
    free(names);
    if (dup) {
        t_set_errmsg("%s: duplicate tensor name '%s' in the header", path, dup);
        return st_fail(f, &h);
    }
    /* validate every record before exposing any data */
    for (int i = 0; i < h.n; i++) {
        Rec *r = &h.recs[i];
        int dsize = 0;
        if (!r->has_dtype || !r->has_shape || !r->has_offsets) {
            t_set_errmsg("%s: tensor '%s': missing %s", path, r->name,
                         !r->has_dtype ? "dtype" : !r->has_shape ? "shape" : "data_offsets");
            return st_fail(f, &h);
        }
        if (dtype_parse(r->dtype_str, &r->dtype, &dsize)) {
            t_set_errmsg("%s: tensor '%s': unknown dtype '%s' (supported: F32, F16, BF16)", path, r->name,
                         r->dtype_str);
            return st_fail(f, &h);
        }
        if (r->begin > r->end || (uint64_t)r->end > data_size) {
            t_set_errmsg("%s: tensor '%s': data_offsets [%lld, %lld] out of range (data buffer is %llu bytes)",
                         path, r->name, (long long)r->begin, (long long)r->end, (unsigned long long)data_size);
            return st_fail(f, &h);
        }
        uint64_t nbytes = (uint64_t)dsize;
        for (int d = 0; d < r->ndim; d++)
            if (r->shape[d] && nbytes > UINT64_MAX / (uint64_t)r->shape[d]) nbytes = UINT64_MAX;
            else nbytes *= (uint64_t)r->shape[d];
        if (nbytes != (uint64_t)(r->end - r->begin)) {
            t_set_errmsg("%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but shape and %s need %llu",
                         path, r->name, (long long)r->begin, (long long)r->end, (long long)(r->end - r->begin),
                         r->dtype_str, (unsigned long long)nbytes);
            return st_fail(f, &h);
        }
    }
    if (check_layout(path, &h, data_size)) return st_fail(f, &h);
    if (h.meta_begin) {
        size_t n = (size_t)(h.meta_end - h.meta_begin);
        if (!(f->metadata_json = malloc(n + 1))) { t_set_errmsg("%s: out of memory", path); return st_fail(f, &h); }
        memcpy(f->metadata_json, h.meta_begin, n);
        f->metadata_json[n] = 0;
    }
    f->entries = calloc((size_t)(h.n ? h.n : 1), sizeof(StEntry));
    f->owned = calloc((size_t)(h.n ? h.n : 1), sizeof(float *));
    if (!f->entries || !f->owned) { t_set_errmsg("%s: out of memory", path); return st_fail(f, &h); }
    for (int i = 0; i < h.n; i++) {
        Rec *r = &h.recs[i];
        StEntry *e = &f->entries[f->n++];
        e->name = r->name;
        r->name = NULL; /* moved */
        e->ndim = r->ndim;
        memcpy(e->shape, r->shape, sizeof(int64_t) * (size_t)r->ndim);
        const unsigned char *src = data + r->begin;
        size_t numel = (size_t)(r->end - r->begin) / (r->dtype == DT_F32 ? 4 : 2);
        if (r->dtype == DT_F32 && ((uintptr_t)src & 3) == 0) {
            e->data = (const float *)src;
            continue;
        }
        /* converted (or realigned) copy; at least one element so that data is never NULL */
        float *dst = malloc(sizeof(float) * (numel ? numel : 1));
        if (!dst) { t_set_errmsg("%s: tensor '%s': out of memory", path, e->name); return st_fail(f, &h); }
        f->owned[f->n_owned++] = dst;
        for (size_t k = 0; k < numel; k++) {
            if (r->dtype == DT_F32) {
                memcpy(dst + k, src + 4 * k, 4);
            } else {
                uint16_t v = (uint16_t)(src[2 * k] | src[2 * k + 1] << 8);
                dst[k] = r->dtype == DT_F16 ? f16_to_f32(v) : bf16_to_f32(v);
            }
        }
        e->data = dst;
    }
    header_free(&h);
    return f;
}

void st_close(StFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    free(f->entries);
    for (int i = 0; i < f->n_owned; i++) free(f->owned[i]);
    free(f->owned);
    free(f->metadata_json);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

const StEntry *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->entries[i].name, name)) return &f->entries[i];
    return NULL;
}

int st_meta(const StFile *f, JsonObject *meta) {
    memset(meta, 0, sizeof *meta);
    if (!f->metadata_json) return 0;
    if (json_object_parse(meta, f->metadata_json, strlen(f->metadata_json)) == 0) return 0;
    char why[256];
    snprintf(why, sizeof why, "%s", t_errmsg());
    t_set_errmsg("%s: malformed __metadata__: %s", f->path ? f->path : "safetensors", why);
    return -1;
}

int st_meta_get(const StFile *f, const char *key, char *buf, size_t n) {
    JsonObject meta;
    if (st_meta(f, &meta)) return -1;
    const char *v = json_object_get(&meta, key);
    int rc = v && strlen(v) < n ? 0 : -1;
    if (!rc) memcpy(buf, v, strlen(v) + 1);
    json_object_free(&meta);
    return rc;
}

/* ------------------------------------------------------------------ writing */

static void (*save_hook)(const char *phase);
void st_set_save_hook(void (*hook)(const char *phase)) { save_hook = hook; }
static void phase(const char *name) {
    if (save_hook) save_hook(name);
}

/* Builds the padded header; returns 0 or -1 (errmsg set). */
static int build_header(JsonBuf *b, const char *path, int n, const char *const *names, Tensor *const *tensors,
                        const char *metadata_json, bool f16) {
    json_buf_str(b, "{");
    if (metadata_json) {
        /* validated and written back compactly: whatever spelling the caller used, the file holds plain JSON */
        JsonObject meta = {0};
        if (json_object_parse(&meta, metadata_json, strlen(metadata_json))) {
            char why[256];
            snprintf(why, sizeof why, "%s", t_errmsg());
            t_set_errmsg("%s: metadata must be a JSON object of strings (%s)", path, why);
            return -1;
        }
        char *text = json_object_write(&meta);
        json_object_free(&meta);
        if (!text) {
            t_set_errmsg("%s: out of memory", path);
            return -1;
        }
        json_buf_str(b, "\"__metadata__\":");
        json_buf_str(b, text);
        free(text);
        if (n) json_buf_str(b, ",");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *t = tensors[i];
        char tmp[160];
        json_buf_string(b, names[i]);
        json_buf_str(b, f16 ? ":{\"dtype\":\"F16\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            json_buf_str(b, tmp);
        }
        uint64_t bytes = (f16 ? 2 : 4) * (uint64_t)t_numel(t);
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}%s", (unsigned long long)off,
                 (unsigned long long)(off + bytes), i + 1 < n ? "," : "");
        json_buf_str(b, tmp);
        off += bytes;
    }
    json_buf_str(b, "}");
    while (b->n % 8) json_buf_str(b, " "); /* the data buffer starts 8-byte aligned */
    if (b->oom) {
        t_set_errmsg("%s: out of memory building the header", path);
        return -1;
    }
    return 0;
}

/* Round to nearest even; |x| beyond F16's largest finite value (65504) has been refused before. */
static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, absx = x & 0x7FFFFFFFu;
    if (absx > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);                 /* nan */
    if (absx >= 0x47800000u) return (uint16_t)(sign | 0x7C00u);                /* inf */
    if (absx < 0x38800000u) {                                                  /* F16 subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;                         /* below half the smallest */
        uint32_t e = absx >> 23, man = (absx & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e;                                              /* 14..24 */
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((absx >> 13) - (112u << 10)), rem = absx & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;                     /* may carry into inf */
    return (uint16_t)(sign | h);
}

static int write_tensor(FILE *fp, const Tensor *t, bool f16) {
    size_t n = (size_t)t_numel(t);
    if (!n) return 0;
    if (!f16 && t_is_contiguous(t)) return fwrite(t->data, sizeof(float), n, fp) == n ? 0 : -1;
    float *tmp = malloc(sizeof(float) * n);
    if (!tmp) return -1;
    t_copy_to(t, tmp);
    int rc;
    if (f16) {
        uint16_t *h = (uint16_t *)tmp;   /* in place: h[i] is written after tmp[i] is read */
        for (size_t i = 0; i < n; i++) h[i] = f32_to_f16(tmp[i]);
        rc = fwrite(h, sizeof(uint16_t), n, fp) == n ? 0 : -1;
    } else {
        rc = fwrite(tmp, sizeof(float), n, fp) == n ? 0 : -1;
    }
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ stale temporaries */

#define ST_TMP_TAG ".tmp."
/* Temporaries named without a pid (by earlier versions) are ours when they are this old. */
#define ST_OLD_TMP_AGE_S 3600

static bool all_digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return n > 0;
}

static bool mkstemp_suffix(const char *s) {
    if (strlen(s) != 6) return false;
    for (int i = 0; i < 6; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* Is `rest` (what follows "<name>.tmp.") the tail of a temporary that a dead save left behind? */
static bool stale_tail(const char *dir, const char *entry, const char *rest) {
    const char *dot = strchr(rest, '.');
    if (dot && all_digits(rest, (size_t)(dot - rest)) && mkstemp_suffix(dot + 1)) {
        long pid = strtol(rest, NULL, 10);
        if (pid <= 0 || pid == (long)getpid()) return false;
        return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    }
    if (!mkstemp_suffix(rest)) return false;
    char full[4400];
    struct stat sb;
    snprintf(full, sizeof full, "%s/%s", dir, entry);
    return lstat(full, &sb) == 0 && S_ISREG(sb.st_mode) && time(NULL) - sb.st_mtime > ST_OLD_TMP_AGE_S;
}

int st_remove_stale_temps(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[4096], prefix[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) >= (int)sizeof dir) return 0;
    if (snprintf(prefix, sizeof prefix, "%s" ST_TMP_TAG, base) >= (int)sizeof prefix) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t plen = strlen(prefix);
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, plen) || !stale_tail(dir, e->d_name, e->d_name + plen)) continue;
        char full[4400];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (unlink(full) == 0) removed++;
    }
    closedir(d);
    return removed;
}

/* fsync of the directory makes the rename itself durable. */
static int sync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int save(const char *path, int n, const char *const *names, Tensor *const *tensors, const char *metadata_json,
                bool f16) {
    for (int i = 0; i < n; i++) {
        if (!names[i] || !tensors[i] || !strcmp(names[i], "__metadata__")) {
            t_set_errmsg("%s: tensor %d has no usable name or is NULL", path, i);
            return -1;
        }
        if (f16) {   /* F16 keeps finite values up to 65504; larger ones would silently become inf */
            float *v = malloc(sizeof(float) * (size_t)t_numel(tensors[i]));
            if (!v && t_numel(tensors[i])) {
                t_set_errmsg("%s: out of memory", path);
                return -1;
            }
            t_copy_to(tensors[i], v);
            int64_t bad = -1;
            for (int64_t k = 0; k < t_numel(tensors[i]) && bad < 0; k++)
                if (isfinite(v[k]) && fabsf(v[k]) >= 65520.0f) bad = k;
            float bv = bad >= 0 ? v[bad] : 0.0f;
            free(v);
            if (bad >= 0) {
                t_set_errmsg("%s: tensor '%s' holds %g (element %lld), beyond the F16 range (65504)", path, names[i],
                             (double)bv, (long long)bad);
                return -1;
            }
        }
    }
    const char *dup = first_duplicate(n, names);
    if (dup) {
        t_set_errmsg("%s: duplicate tensor name '%s'", path, dup);
        return -1;
    }
    JsonBuf hdr = {0};
    if (build_header(&hdr, path, n, names, tensors, metadata_json, f16) != 0) {
        free(hdr.p);
        return -1;
    }
    size_t tlen = strlen(path) + 40;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(hdr.p);
        t_set_errmsg("%s: out of memory", path);
        return -1;
    }
    st_remove_stale_temps(path);
    /* same directory as the target, so rename() is atomic; the pid in the name tells a later save whether
     * the writer is still alive */
    snprintf(tmp, tlen, "%s" ST_TMP_TAG "%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(tmp);
    FILE *fp = NULL;
    const char *what = NULL;
    if (fd < 0) {
        what = "cannot create the temporary file";
        goto fail;
    }
    fchmod(fd, 0644);
    if (!(fp = fdopen(fd, "wb"))) {
        close(fd);
        what = "fdopen failed";
        goto fail;
    }
    phase("opened");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.n >> (8 * i));
    if (fwrite(len8, 1, 8, fp) != 8 || fwrite(hdr.p, 1, hdr.n, fp) != hdr.n) {
        what = "write failed";
        goto fail;
    }
    phase("header");
    for (int i = 0; i < n; i++) {
        if (write_tensor(fp, tensors[i], f16) != 0) {
            what = "write failed";
            goto fail;
        }
        if (i == n / 2) phase("data");
    }
    if (fflush(fp) != 0) {
        what = "flush failed";
        goto fail;
    }
    phase("flushed");
    if (fsync(fileno(fp)) != 0) {
        what = "fsync failed";
        goto fail;
    }
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) {
        what = "close failed";
        goto fail;
    }
    phase("synced");
    if (rename(tmp, path) != 0) {
        what = "rename failed";
        goto fail;
    }
    phase("renamed");
    if (sync_dir_of(path) != 0) {
        /* the file is complete and in place; only the directory entry's durability is in doubt */
        t_set_errmsg("%s: saved, but fsync of the directory failed: %s", path, strerror(errno));
        free(tmp);
        free(hdr.p);
        return -1;
    }
    free(tmp);
    free(hdr.p);
    return 0;
fail:;
    int err = errno;
    if (fp) fclose(fp);
    if (fd >= 0) unlink(tmp);
    t_set_errmsg("%s: %s: %s (the previous file, if any, is untouched)", path, what, strerror(err));
    free(tmp);
    free(hdr.p);
    return -1;
}

int st_save(const char *path, int n, const char *const *names, Tensor *const *tensors, const char *metadata_json) {
    return save(path, n, names, tensors, metadata_json, false);
}

int st_save_f16(const char *path, int n, const char *const *names, Tensor *const *tensors, const char *metadata_json) {
    return save(path, n, names, tensors, metadata_json, true);
}
