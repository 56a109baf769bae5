/* safetensors: u64 LE header length N, N bytes of JSON header, then the data buffer. The header maps
 * each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} relative to the data buffer, plus
 * an optional "__metadata__" object of strings. Reading trusts nothing: every length and offset is
 * checked against the file size before a byte of data is touched. */
#include "tensor/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads F32 data in place and assumes a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we (a corrupt length is caught early). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_DEPTH 64

/* ------------------------------------------------------------------ a small JSON reader */

typedef struct {
    const char *s, *end;
    const char *err;       /* first problem found (static string) */
} Json;

static void j_ws(Json *j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++;
}

static bool j_fail(Json *j, const char *why) {
    if (!j->err) j->err = why;
    return false;
}

static bool j_peek(Json *j, char c) {
    j_ws(j);
    return j->s < j->end && *j->s == c;
}

static bool j_expect(Json *j, char c, const char *why) {
    if (!j_peek(j, c)) return j_fail(j, why);
    j->s++;
    return true;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool j_hex4(Json *j, uint32_t *v) {
    if (j->end - j->s < 4) return j_fail(j, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->s[i]);
        if (h < 0) return j_fail(j, "bad \\u escape");
        *v = *v << 4 | (uint32_t)h;
    }
    j->s += 4;
    return true;
}

/* Parses a string; *out (when out != NULL) gets a malloc'd, NUL-terminated UTF-8 copy. */
static bool j_string(Json *j, char **out) {
    if (!j_expect(j, '"', "expected a string")) return false;
    /* decoded text is never longer than the escaped text */
    const char *q = j->s;
    while (q < j->end && *q != '"') q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end) return j_fail(j, "unterminated string");
    char *buf = out ? malloc((size_t)(q - j->s) + 1) : NULL;
    if (out && !buf) return j_fail(j, "out of memory");
    size_t k = 0;
    while (*j->s != '"') {
        unsigned char c = (unsigned char)*j->s++;
        if (c < 0x20) { free(buf); return j_fail(j, "control character in string"); }
        if (c != '\\') {
            if (buf) buf[k] = (char)c;
            k++;
            continue;
        }
        char e = *j->s++;
        char lit = 0;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!j_hex4(j, &cp)) { free(buf); return false; }
            if (cp >= 0xD800 && cp < 0xDC00) { /* surrogate pair */
                uint32_t lo;
                if (j->end - j->s < 2 || j->s[0] != '\\' || j->s[1] != 'u') { free(buf); return j_fail(j, "lone surrogate"); }
                j->s += 2;
                if (!j_hex4(j, &lo)) { free(buf); return false; }
                if (lo < 0xDC00 || lo > 0xDFFF) { free(buf); return j_fail(j, "bad surrogate pair"); }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char tmp[4];
            size_t w = utf8_put(tmp, cp);
            if (buf) memcpy(buf + k, tmp, w);
            k += w;
            continue;
        }
        default: free(buf); return j_fail(j, "bad escape in string");
        }
        if (buf) buf[k] = lit;
        k++;
    }
    j->s++; /* closing quote */
    if (out) {
        buf[k] = 0;
        if (strlen(buf) != k) { free(buf); return j_fail(j, "NUL character in string"); }
        *out = buf;
    }
    return true;
}

/* A non-negative integer that fits in int64 (shapes and offsets). */
static bool j_uint(Json *j, int64_t *v) {
    j_ws(j);
    if (j->s >= j->end || *j->s < '0' || *j->s > '9') return j_fail(j, "expected a non-negative integer");
    int64_t x = 0;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        int d = *j->s++ - '0';
        if (x > (INT64_MAX - d) / 10) return j_fail(j, "integer too large");
        x = x * 10 + d;
    }
    if (j->s < j->end && (*j->s == '.' || *j->s == 'e' || *j->s == 'E')) return j_fail(j, "expected an integer");
    *v = x;
    return true;
}

static bool j_skip(Json *j, int depth) {
    if (depth > ST_MAX_DEPTH) return j_fail(j, "nested too deeply");
    j_ws(j);
    if (j->s >= j->end) return j_fail(j, "unexpected end of header");
    char c = *j->s;
    if (c == '"') return j_string(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->s++;
        if (j_peek(j, close)) { j->s++; return true; }
        for (;;) {
            if (c == '{' && !(j_string(j, NULL) && j_expect(j, ':', "expected ':'"))) return false;
            if (!j_skip(j, depth + 1)) return false;
            if (j_peek(j, ',')) { j->s++; continue; }
            return j_expect(j, close, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->s) >= n && !memcmp(j->s, words[i], n)) { j->s += n; return true; }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *st = j->s;
        while (j->s < j->end && strchr("+-0123456789.eE", *j->s)) j->s++;
        return j->s > st;
    }
    return j_fail(j, "unexpected character");
}

/* Calls fn(key, ctx) with j positioned at each value of an object; fn must consume the value. */
typedef bool (*JMemberFn)(Json *j, const char *key, void *ctx);
static bool j_object(Json *j, JMemberFn fn, void *ctx) {
    if (!j_expect(j, '{', "expected an object")) return false;
    if (j_peek(j, '}')) { j->s++; return true; }
    for (;;) {
        char *key = NULL;
        if (!j_string(j, &key)) return false;
        bool ok = j_expect(j, ':', "expected ':'") && fn(j, key, ctx);
        free(key);
        if (!ok) return false;
        if (j_peek(j, ',')) { j->s++; continue; }
        return j_expect(j, '}', "expected ',' or '}'");
    }
}

/* ------------------------------------------------------------------ header records */

typedef enum { DT_NONE, DT_F32, DT_F16, DT_BF16 } DType;

typedef struct {
    char *name;
    char *dtype_str;
    DType dtype;
    int ndim;
    int64_t shape[T_MAX_DIMS];
    int64_t begin, end;
    bool has_shape, has_offsets;
    char *problem;          /* set for a field-level error */
} Rec;

typedef struct {
    Rec *recs;
    int n, cap;
    const char *meta_begin, *meta_end;
    int n_meta;
} Header;

static bool rec_member(Json *j, const char *key, void *ctx) {
    Rec *r = ctx;
    if (!strcmp(key, "dtype")) {
        free(r->dtype_str);
        r->dtype_str = NULL;
        return j_string(j, &r->dtype_str);
    }
    if (!strcmp(key, "shape")) {
        if (!j_expect(j, '[', "shape: expected '['")) return false;
        r->ndim = 0;
        r->has_shape = true;
        if (j_peek(j, ']')) { j->s++; return true; }
        for (;;) {
            int64_t d;
            if (!j_uint(j, &d)) return false;
            if (r->ndim == T_MAX_DIMS) return j_fail(j, "shape has more than 6 dimensions");
            r->shape[r->ndim++] = d;
            if (j_peek(j, ',')) { j->s++; continue; }
            return j_expect(j, ']', "shape: expected ',' or ']'");
        }
    }
    if (!strcmp(key, "data_offsets")) {
        r->has_offsets = true;
        return j_expect(j, '[', "data_offsets: expected '['") && j_uint(j, &r->begin) &&
               j_expect(j, ',', "data_offsets: expected two integers") && j_uint(j, &r->end) &&
               j_expect(j, ']', "data_offsets: expected two integers");
    }
    return j_skip(j, 1);
}

static bool meta_member(Json *j, const char *key, void *ctx) {
    (void)key;
    (*(int *)ctx)++;
    if (!j_peek(j, '"')) return j_fail(j, "__metadata__ values must be strings");
    return j_string(j, NULL);
}

static bool header_member(Json *j, const char *key, void *ctx) {
    Header *h = ctx;
    if (!strcmp(key, "__metadata__")) {
        j_ws(j);
        h->meta_begin = j->s;
        h->n_meta = 0;
        if (!j_object(j, meta_member, &h->n_meta)) return false;
        h->meta_end = j->s;
        return true;
    }
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 16;
        Rec *nr = realloc(h->recs, sizeof(Rec) * (size_t)cap);
        if (!nr) return j_fail(j, "out of memory");
        h->recs = nr, h->cap = cap;
    }
    Rec *r = &h->recs[h->n++];
    memset(r, 0, sizeof *r);
    r->name = strdup(key);
    if (!r->name) return j_fail(j, "out of memory");
    return j_object(j, rec_member, r);
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

StFile *st_open(const char *path) {
    StFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        t_set_errmsg("%s: out of memory", path);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        t_set_errmsg("%s: cannot open: %s", path, strerror(errno));
        return st_fail(f, NULL);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        t_set_errmsg("%s: not a regular file", path);
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
    Json j = {hs, hs + hlen, NULL};
    bool parsed = j_object(&j, header_member, &h);
    if (parsed) {
        j_ws(&j);
        if (j.s != j.end) parsed = j_fail(&j, "trailing characters after the header object");
    }
    if (!parsed) {
        t_set_errmsg("%s: malformed JSON header at byte %lld: %s", path, (long long)(j.s - hs + 8), j.err);
        return st_fail(f, &h);
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
        if (!r->dtype_str || !r->has_shape || !r->has_offsets) {
            t_set_errmsg("%s: tensor '%s': missing %s", path, r->name,
                         !r->dtype_str ? "dtype" : !r->has_shape ? "shape" : "data_offsets");
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

typedef struct {
    const char *want;
    char *buf;
    size_t n;
    int found; /* 1 found and fits, -1 found but too long */
} MetaGet;

static bool meta_get_member(Json *j, const char *key, void *ctx) {
    MetaGet *g = ctx;
    if (strcmp(key, g->want)) return j_skip(j, 1);
    char *v = NULL;
    if (!j_string(j, &v)) return false;
    size_t len = strlen(v);
    g->found = len < g->n ? 1 : -1;
    if (g->found == 1) memcpy(g->buf, v, len + 1);
    free(v);
    return true;
}

int st_meta_get(const StFile *f, const char *key, char *buf, size_t n) {
    if (!f->metadata_json) return -1;
    MetaGet g = {key, buf, n, 0};
    Json j = {f->metadata_json, f->metadata_json + strlen(f->metadata_json), NULL};
    if (!j_object(&j, meta_get_member, &g)) return -1;
    return g.found == 1 ? 0 : -1;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = true; return; }
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_json_string(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            buf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_str(b, esc);
        } else {
            buf_put(b, (const char *)&c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void (*save_hook)(const char *phase);
void st_set_save_hook(void (*hook)(const char *phase)) { save_hook = hook; }
static void phase(const char *name) {
    if (save_hook) save_hook(name);
}

/* Builds the padded header; returns 0 or -1 (errmsg set). */
static int build_header(Buf *b, const char *path, int n, const char *const *names, Tensor *const *tensors,
                        const char *metadata_json) {
    buf_str(b, "{");
    if (metadata_json) {
        int count = 0;
        Json j = {metadata_json, metadata_json + strlen(metadata_json), NULL};
        if (!j_object(&j, meta_member, &count) || (j_ws(&j), j.s != j.end)) {
            t_set_errmsg("%s: metadata must be a JSON object of strings (%s)", path, j.err ? j.err : "trailing text");
            return -1;
        }
        buf_str(b, "\"__metadata__\":");
        buf_str(b, metadata_json);
        if (n) buf_str(b, ",");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *t = tensors[i];
        char tmp[160];
        buf_json_string(b, names[i]);
        buf_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            buf_str(b, tmp);
        }
        uint64_t bytes = 4 * (uint64_t)t_numel(t);
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}%s", (unsigned long long)off,
                 (unsigned long long)(off + bytes), i + 1 < n ? "," : "");
        buf_str(b, tmp);
        off += bytes;
    }
    buf_str(b, "}");
    while (b->n % 8) buf_str(b, " "); /* the data buffer starts 8-byte aligned */
    if (b->oom) {
        t_set_errmsg("%s: out of memory building the header", path);
        return -1;
    }
    return 0;
}

static int write_tensor(FILE *fp, const Tensor *t) {
    size_t n = (size_t)t_numel(t);
    if (!n) return 0;
    if (t_is_contiguous(t)) return fwrite(t->data, sizeof(float), n, fp) == n ? 0 : -1;
    float *tmp = malloc(sizeof(float) * n);
    if (!tmp) return -1;
    t_copy_to(t, tmp);
    int rc = fwrite(tmp, sizeof(float), n, fp) == n ? 0 : -1;
    free(tmp);
    return rc;
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

int st_save(const char *path, int n, const char *const *names, Tensor *const *tensors, const char *metadata_json) {
    for (int i = 0; i < n; i++) {
        if (!names[i] || !tensors[i] || !strcmp(names[i], "__metadata__")) {
            t_set_errmsg("%s: tensor %d has no usable name or is NULL", path, i);
            return -1;
        }
    }
    const char *dup = first_duplicate(n, names);
    if (dup) {
        t_set_errmsg("%s: duplicate tensor name '%s'", path, dup);
        return -1;
    }
    Buf hdr = {0};
    if (build_header(&hdr, path, n, names, tensors, metadata_json) != 0) {
        free(hdr.p);
        return -1;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(hdr.p);
        t_set_errmsg("%s: out of memory", path);
        return -1;
    }
    /* same directory as the target, so rename() is atomic */
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
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
        if (write_tensor(fp, tensors[i]) != 0) {
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
