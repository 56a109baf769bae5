/* PyTorch zip checkpoints, read without trusting them: the zip directory is bounds-checked, data.pkl runs
 * through a small pickle machine with an allow-list of globals, and tensors are views into an mmap of the file
 * until pt_read_f32 converts one. */
#include "tensor/pt_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pt_reader.c reads little-endian storages in place"
#endif

#define PT_MAX_PKL ((size_t)1 << 30)     /* data.pkl above 1 GB is not a checkpoint */
#define PT_MAX_VALUES 20000000           /* pickle objects */
#define PT_MAX_DEPTH 64                  /* nesting of the unpickled structure */

/* ------------------------------------------------------------------ zip directory */

typedef struct {
    char *name;
    int method;               /* 0 stored, 8 deflated */
    uint32_t crc;
    uint64_t csize, usize, data_off;
    bool crc_checked;
    unsigned char *inflated;  /* deflated entries, once read */
} ZipEntry;

typedef struct {
    const char *path;
    const unsigned char *map;
    size_t size;
    ZipEntry *e;
    int n;
} Zip;

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static int zip_fail(const Zip *z, const char *what) {
    t_set_errmsg("%s: not a valid PyTorch zip checkpoint: %s", z->path, what);
    return -1;
}

static int zip_parse(Zip *z) {
    const unsigned char *m = z->map;
    size_t size = z->size;
    if (size < 22) return zip_fail(z, "file too short");
    /* the end-of-central-directory record: within the last 64 KB + 22 bytes */
    size_t lo = size > 65557 ? size - 65557 : 0, eocd = SIZE_MAX;
    for (size_t p = size - 22 + 1; p-- > lo;)
        if (rd32(m + p) == 0x06054b50) { eocd = p; break; }
    if (eocd == SIZE_MAX) return zip_fail(z, "no end-of-central-directory record (truncated?)");
    uint64_t count = rd16(m + eocd + 10), cd_size = rd32(m + eocd + 12), cd_off = rd32(m + eocd + 16);
    if (eocd >= 20 && rd32(m + eocd - 20) == 0x07064b50) {   /* zip64 locator */
        uint64_t z64 = rd64(m + eocd - 20 + 8);
        if (z64 > size - 56 || rd32(m + z64) != 0x06064b50) return zip_fail(z, "bad zip64 end record");
        count = rd64(m + z64 + 32), cd_size = rd64(m + z64 + 40), cd_off = rd64(m + z64 + 48);
    }
    if (cd_off > size || cd_size > size - cd_off) return zip_fail(z, "central directory outside the file");
    if (count > cd_size / 46 || count > 10000000) return zip_fail(z, "entry count does not fit the directory");
    z->e = calloc((size_t)count + 1, sizeof *z->e);
    if (!z->e) return zip_fail(z, "out of memory");
    const unsigned char *p = m + cd_off, *end = m + cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(p) != 0x02014b50) return zip_fail(z, "bad central directory entry");
        ZipEntry *e = &z->e[z->n];
        e->method = rd16(p + 10);
        e->crc = rd32(p + 16);
        e->csize = rd32(p + 20), e->usize = rd32(p + 24);
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        uint64_t loff = rd32(p + 42);
        if ((size_t)(end - p) < 46 + nlen + xlen + clen) return zip_fail(z, "central directory entry overruns");
        /* zip64 extra field: the 0xFFFFFFFF fields, in order */
        const unsigned char *x = p + 46 + nlen, *xe = x + xlen;
        while (xe - x >= 4) {
            uint16_t id = rd16(x), len = rd16(x + 2);
            if (xe - x - 4 < len) return zip_fail(z, "bad extra field");
            if (id == 1) {
                const unsigned char *q = x + 4, *qe = q + len;
                if (e->usize == 0xFFFFFFFFu) { if (qe - q < 8) return zip_fail(z, "bad zip64 field"); e->usize = rd64(q); q += 8; }
                if (e->csize == 0xFFFFFFFFu) { if (qe - q < 8) return zip_fail(z, "bad zip64 field"); e->csize = rd64(q); q += 8; }
                if (loff == 0xFFFFFFFFu) { if (qe - q < 8) return zip_fail(z, "bad zip64 field"); loff = rd64(q); q += 8; }
            }
            x += 4 + len;
        }
        e->name = malloc(nlen + 1);
        if (!e->name) return zip_fail(z, "out of memory");
        memcpy(e->name, p + 46, nlen);
        e->name[nlen] = 0;
        z->n++;
        if (loff > size - 30 || rd32(m + loff) != 0x04034b50) return zip_fail(z, "bad local header offset");
        uint64_t data = loff + 30 + rd16(m + loff + 26) + rd16(m + loff + 28);
        if (data > size || e->csize > size - data) return zip_fail(z, "entry data outside the file (truncated?)");
        e->data_off = data;
        if (e->method != 0 && e->method != 8) return zip_fail(z, "entry compressed with an unsupported method");
        if (e->method == 0 && e->csize != e->usize) return zip_fail(z, "stored entry with two sizes");
        p += 46 + nlen + xlen + clen;
    }
    return 0;
}

static ZipEntry *zip_find(Zip *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (!strcmp(z->e[i].name, name)) return &z->e[i];
    return NULL;
}

/* The entry's bytes (inflated once if deflated), CRC-checked on first use. */
static const unsigned char *zip_data(Zip *z, ZipEntry *e) {
    const unsigned char *d = z->map + e->data_off;
    if (e->method == 8) {
        if (!e->inflated) {
            if (e->usize > ((uint64_t)16 << 30)) { zip_fail(z, "deflated entry too large"); return NULL; }
            e->inflated = malloc(e->usize ? e->usize : 1);
            if (!e->inflated) { zip_fail(z, "out of memory inflating an entry"); return NULL; }
            z_stream s = {0};
            if (inflateInit2(&s, -15) != Z_OK) { zip_fail(z, "zlib init failed"); return NULL; }
            uint64_t in_left = e->csize, out_done = 0;
            s.next_in = (unsigned char *)d;
            int r = Z_OK;
            while (r == Z_OK) {
                uInt in_chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
                uInt out_chunk = e->usize - out_done > (1u << 30) ? (1u << 30) : (uInt)(e->usize - out_done);
                s.avail_in = in_chunk, s.next_out = e->inflated + out_done, s.avail_out = out_chunk;
                r = inflate(&s, Z_NO_FLUSH);
                in_left -= in_chunk - s.avail_in;
                out_done += out_chunk - s.avail_out;
                if (r == Z_OK && in_chunk == s.avail_in && out_chunk == s.avail_out) r = Z_DATA_ERROR;   /* no progress */
            }
            inflateEnd(&s);
            if (r != Z_STREAM_END || out_done != e->usize) {
                free(e->inflated);
                e->inflated = NULL;
                t_set_errmsg("%s: entry %s: corrupt compressed data", z->path, e->name);
                return NULL;
            }
        }
        d = e->inflated;
    }
    if (!e->crc_checked) {
        uLong c = crc32(0L, Z_NULL, 0);
        for (uint64_t off = 0; off < e->usize; off += 1u << 30) {
            uint64_t len = e->usize - off > (1u << 30) ? (1u << 30) : e->usize - off;
            c = crc32(c, d + off, (uInt)len);
        }
        if ((uint32_t)c != e->crc) {
            t_set_errmsg("%s: entry %s: CRC mismatch (corrupt file)", z->path, e->name);
            return NULL;
        }
        e->crc_checked = true;
    }
    return d;
}

/* ------------------------------------------------------------------ pickle values */

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_TENSOR,
               V_STORAGE, V_DTYPE, V_MARK } VKind;

typedef enum { G_ODICT, G_REBUILD_TENSOR, G_REBUILD_PARAM, G_STORAGE, G_NP_SCALAR, G_NP_DTYPE, G_ENCODE } GKind;

typedef struct Value Value;
struct Value {
    VKind k;
    int64_t i;            /* int, bool; global kind; tensor/storage index */
    double f;
    char *s;              /* str, bytes (len), dtype code */
    size_t len;
    Value **items;        /* tuple, list; dict as key, value pairs */
    int n, cap;
    PtDType dt;           /* storage globals */
};

typedef struct {
    char key[64];
    PtDType dtype;
    int64_t numel;
    ZipEntry *entry;
} Storage;

struct PtFile {
    char *path;
    void *map;
    size_t map_len;
    Zip zip;
    char prefix[512];     /* "<archive>/" */
    PtEntry *entries;
    int n, cap;
    Storage *storages;
    int n_st, cap_st;
    /* unpickling state */
    Value **pool;
    int64_t n_pool, cap_pool;
    Value **tensors;      /* tensor values in creation order (their PtEntry has no name yet) */
    PtEntry *raw;         /* tensor records by creation order */
    int n_raw, cap_raw;
};

static const size_t elsize[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
const char *pt_dtype_name(PtDType d) {
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    return (unsigned)d < sizeof names / sizeof names[0] ? names[d] : "?";
}

static Value *vnew(PtFile *f, VKind k) {
    if (f->n_pool >= PT_MAX_VALUES) return NULL;
    if (f->n_pool == f->cap_pool) {
        int64_t cap = f->cap_pool ? 2 * f->cap_pool : 1024;
        Value **p = realloc(f->pool, sizeof *p * (size_t)cap);
        if (!p) return NULL;
        f->pool = p, f->cap_pool = cap;
    }
    Value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->k = k;
    f->pool[f->n_pool++] = v;
    return v;
}

static int vpush(Value *c, Value *x) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 4;
        if (cap > (1 << 28)) return -1;
        Value **p = realloc(c->items, sizeof *p * (size_t)cap);
        if (!p) return -1;
        c->items = p, c->cap = cap;
    }
    c->items[c->n++] = x;
    return 0;
}

static void pool_free(PtFile *f) {
    for (int64_t i = 0; i < f->n_pool; i++) {
        free(f->pool[i]->s);
        free(f->pool[i]->items);
        free(f->pool[i]);
    }
    free(f->pool);
    f->pool = NULL;
    f->n_pool = f->cap_pool = 0;
}

/* ------------------------------------------------------------------ the machine */

typedef struct {
    PtFile *f;
    const unsigned char *begin, *p, *end;
    Value **stack;
    int sp, cap;
    int *marks, n_marks, cap_marks;   /* stack indices of the marks, so finding the topmost one is O(1) */
    Value **memo;
    int64_t n_memo;
    char err[256];
} Vm;

#define FAIL(...) do { snprintf(vm->err, sizeof vm->err, __VA_ARGS__); return -1; } while (0)

static int push(Vm *vm, Value *v) {
    if (!v) FAIL("out of memory (or more than %d objects)", PT_MAX_VALUES);
    if (vm->sp == vm->cap) {
        int cap = vm->cap ? 2 * vm->cap : 256;
        if (cap > (1 << 24)) FAIL("pickle stack too deep");
        Value **s = realloc(vm->stack, sizeof *s * (size_t)cap);
        if (!s) FAIL("out of memory");
        vm->stack = s, vm->cap = cap;
    }
    if (v->k == V_MARK) {
        if (vm->n_marks == vm->cap_marks) {
            int cap = vm->cap_marks ? 2 * vm->cap_marks : 64;
            int *m = realloc(vm->marks, sizeof *m * (size_t)cap);
            if (!m) FAIL("out of memory");
            vm->marks = m, vm->cap_marks = cap;
        }
        vm->marks[vm->n_marks++] = vm->sp;
    }
    vm->stack[vm->sp++] = v;
    return 0;
}

static Value *pop(Vm *vm) {
    if (vm->sp == 0 || vm->stack[vm->sp - 1]->k == V_MARK) return NULL;
    return vm->stack[--vm->sp];
}

/* index of the topmost mark, or -1 */
static int find_mark(Vm *vm) { return vm->n_marks ? vm->marks[vm->n_marks - 1] : -1; }

/* Shrinks the stack to n entries, forgetting the marks that went with it. */
static void truncate_to(Vm *vm, int n) {
    vm->sp = n;
    while (vm->n_marks && vm->marks[vm->n_marks - 1] >= n) vm->n_marks--;
}

static int need(Vm *vm, size_t n) {
    if ((size_t)(vm->end - vm->p) < n) FAIL("data.pkl ends inside an instruction (truncated)");
    return 0;
}

static int memo_put(Vm *vm, int64_t idx, Value *v) {
    if (idx < 0 || idx > 100000000) FAIL("memo index %lld out of range", (long long)idx);
    if (idx >= vm->n_memo) {
        int64_t n = idx + 1 > 2 * vm->n_memo ? idx + 1 : 2 * vm->n_memo;
        Value **m = realloc(vm->memo, sizeof *m * (size_t)n);
        if (!m) FAIL("out of memory");
        memset(m + vm->n_memo, 0, sizeof *m * (size_t)(n - vm->n_memo));
        vm->memo = m, vm->n_memo = n;
    }
    vm->memo[idx] = v;
    return 0;
}

static Value *new_str(Vm *vm, VKind k, const unsigned char *s, size_t n) {
    Value *v = vnew(vm->f, k);
    if (!v) return NULL;
    v->s = malloc(n + 1);
    if (!v->s) return NULL;
    memcpy(v->s, s, n);
    v->s[n] = 0;
    v->len = n;
    return v;
}

static int global(Vm *vm, const char *mod, const char *name) {
    static const struct { const char *mod, *name; GKind g; int dt; } allow[] = {
        {"collections", "OrderedDict", G_ODICT, 0},
        {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR, 0},
        {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, 0},
        {"torch", "FloatStorage", G_STORAGE, PT_F32},     {"torch", "HalfStorage", G_STORAGE, PT_F16},
        {"torch", "BFloat16Storage", G_STORAGE, PT_BF16}, {"torch", "DoubleStorage", G_STORAGE, PT_F64},
        {"torch", "LongStorage", G_STORAGE, PT_I64},      {"torch", "IntStorage", G_STORAGE, PT_I32},
        {"torch", "ShortStorage", G_STORAGE, PT_I16},     {"torch", "CharStorage", G_STORAGE, PT_I8},
        {"torch", "ByteStorage", G_STORAGE, PT_U8},       {"torch", "BoolStorage", G_STORAGE, PT_BOOL},
        {"numpy.core.multiarray", "scalar", G_NP_SCALAR, 0},
        {"numpy", "dtype", G_NP_DTYPE, 0},
        {"_codecs", "encode", G_ENCODE, 0},
    };
    for (size_t i = 0; i < sizeof allow / sizeof allow[0]; i++)
        if (!strcmp(mod, allow[i].mod) && !strcmp(name, allow[i].name)) {
            Value *v = vnew(vm->f, V_GLOBAL);
            if (v) v->i = allow[i].g, v->dt = (PtDType)allow[i].dt;
            return push(vm, v);
        }
    FAIL("refusing the global %s.%s (not something a state dict contains; loading never runs code)", mod, name);
}

static bool tuple_of_ints(const Value *v, int max) {
    if (!v || v->k != V_TUPLE || v->n > max) return false;
    for (int i = 0; i < v->n; i++)
        if (v->items[i]->k != V_INT) return false;
    return true;
}

static int persistent_load(Vm *vm, Value *pid) {
    PtFile *f = vm->f;
    if (!pid || pid->k != V_TUPLE || pid->n != 5 || pid->items[0]->k != V_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->k != V_GLOBAL || pid->items[1]->i != G_STORAGE || pid->items[2]->k != V_STR ||
        pid->items[4]->k != V_INT)
        FAIL("unexpected persistent id (expected ('storage', type, key, location, numel))");
    const char *key = pid->items[2]->s;
    int64_t numel = pid->items[4]->i;
    if (numel < 0 || strlen(key) >= sizeof f->storages[0].key) FAIL("bad storage key or size");
    for (int i = 0; i < f->n_st; i++)
        if (!strcmp(f->storages[i].key, key)) {
            Value *v = vnew(f, V_STORAGE);
            if (v) v->i = i;
            return push(vm, v);
        }
    char name[700];
    snprintf(name, sizeof name, "%sdata/%s", f->prefix, key);
    ZipEntry *e = zip_find(&f->zip, name);
    PtDType dt = pid->items[1]->dt;
    if (!e) FAIL("storage data/%.60s is missing from the archive", key);
    if ((uint64_t)numel > e->usize / elsize[dt])
        FAIL("storage data/%.60s holds %llu bytes, fewer than %lld %s values", key, (unsigned long long)e->usize,
             (long long)numel, pt_dtype_name(dt));
    if (f->n_st == f->cap_st) {
        int cap = f->cap_st ? 2 * f->cap_st : 64;
        Storage *s = realloc(f->storages, sizeof *s * (size_t)cap);
        if (!s) FAIL("out of memory");
        f->storages = s, f->cap_st = cap;
    }
    Storage *s = &f->storages[f->n_st];
    snprintf(s->key, sizeof s->key, "%s", key);
    s->dtype = dt, s->numel = numel, s->entry = e;
    Value *v = vnew(f, V_STORAGE);
    if (v) v->i = f->n_st;
    f->n_st++;
    return push(vm, v);
}

static int rebuild_tensor(Vm *vm, Value *args) {
    PtFile *f = vm->f;
    if (!args || args->k != V_TUPLE || args->n < 6 || args->items[0]->k != V_STORAGE || args->items[1]->k != V_INT ||
        !tuple_of_ints(args->items[2], T_MAX_DIMS) || !tuple_of_ints(args->items[3], T_MAX_DIMS) ||
        args->items[2]->n != args->items[3]->n)
        FAIL("_rebuild_tensor_v2 with unexpected arguments");
    const Storage *st = &f->storages[args->items[0]->i];
    PtEntry e = {0};
    e.dtype = st->dtype, e.storage = (int)args->items[0]->i, e.offset = args->items[1]->i;
    e.ndim = args->items[2]->n;
    int64_t last = e.offset, numel = 1;
    if (e.offset < 0) FAIL("negative storage offset");
    for (int d = 0; d < e.ndim; d++) {
        e.shape[d] = args->items[2]->items[d]->i, e.stride[d] = args->items[3]->items[d]->i;
        if (e.shape[d] < 0 || e.shape[d] > ((int64_t)1 << 40) || e.stride[d] < 0 || e.stride[d] > ((int64_t)1 << 40))
            FAIL("absurd tensor shape or stride");
        if (e.shape[d] == 0) numel = 0;
        else numel = numel > ((int64_t)1 << 40) / e.shape[d] ? ((int64_t)1 << 41) : numel * e.shape[d];
        if (numel > ((int64_t)1 << 40)) FAIL("tensor with more than 2^40 elements");
        if (e.shape[d] > 0) last += (e.shape[d] - 1) * e.stride[d];
    }
    if (numel > 0 && last >= st->numel)
        FAIL("tensor reaches element %lld of a storage of %lld (offset/stride past the end)", (long long)last,
             (long long)st->numel);
    if (f->n_raw == f->cap_raw) {
        int cap = f->cap_raw ? 2 * f->cap_raw : 256;
        PtEntry *r = realloc(f->raw, sizeof *r * (size_t)cap);
        if (!r) FAIL("out of memory");
        f->raw = r, f->cap_raw = cap;
    }
    f->raw[f->n_raw] = e;
    Value *v = vnew(f, V_TENSOR);
    if (v) v->i = f->n_raw;
    f->n_raw++;
    return push(vm, v);
}

/* numpy.core.multiarray.scalar(dtype, bytes) -> a Python number */
static int np_scalar(Vm *vm, Value *args) {
    if (!args || args->k != V_TUPLE || args->n != 2 || args->items[0]->k != V_DTYPE || args->items[1]->k != V_BYTES)
        FAIL("numpy scalar with unexpected arguments");
    const char *code = args->items[0]->s;
    const Value *b = args->items[1];
    Value *v = NULL;
    if (!strcmp(code, "f8") && b->len == 8) {
        v = vnew(vm->f, V_FLOAT);
        if (v) memcpy(&v->f, b->s, 8);
    } else if (!strcmp(code, "f4") && b->len == 4) {
        float x;
        memcpy(&x, b->s, 4);
        v = vnew(vm->f, V_FLOAT);
        if (v) v->f = x;
    } else if (!strcmp(code, "i8") && b->len == 8) {
        v = vnew(vm->f, V_INT);
        if (v) memcpy(&v->i, b->s, 8);
    } else {
        FAIL("numpy scalar of dtype '%s' is not supported", code);
    }
    return push(vm, v);
}

static int reduce(Vm *vm) {
    Value *args = pop(vm), *fn = pop(vm);
    if (!fn || fn->k != V_GLOBAL || !args) FAIL("REDUCE without a callable");
    switch ((GKind)fn->i) {
    case G_ODICT:
        if (args->k != V_TUPLE || args->n != 0) FAIL("OrderedDict with arguments");
        return push(vm, vnew(vm->f, V_DICT));
    case G_REBUILD_TENSOR:
        return rebuild_tensor(vm, args);
    case G_REBUILD_PARAM:
        if (args->k != V_TUPLE || args->n < 1 || args->items[0]->k != V_TENSOR) FAIL("_rebuild_parameter of a non-tensor");
        return push(vm, args->items[0]);
    case G_NP_DTYPE: {
        if (args->k != V_TUPLE || args->n < 1 || args->items[0]->k != V_STR || strlen(args->items[0]->s) > 7)
            FAIL("numpy dtype with unexpected arguments");
        Value *v = vnew(vm->f, V_DTYPE);
        if (v && !(v->s = strdup(args->items[0]->s))) v = NULL;
        return push(vm, v);
    }
    case G_NP_SCALAR:
        return np_scalar(vm, args);
    case G_ENCODE: {
        /* _codecs.encode(str, 'latin1'): how protocol 2 stores bytes; code points above 255 do not fit */
        if (args->k != V_TUPLE || args->n != 2 || args->items[0]->k != V_STR || args->items[1]->k != V_STR ||
            (strcmp(args->items[1]->s, "latin1") && strcmp(args->items[1]->s, "latin-1")))
            FAIL("_codecs.encode with unexpected arguments");
        const unsigned char *s = (const unsigned char *)args->items[0]->s;
        size_t n = args->items[0]->len, k = 0;
        unsigned char *out = malloc(n + 1);
        if (!out) FAIL("out of memory");
        for (size_t i = 0; i < n; i++) {
            if (s[i] < 0x80) out[k++] = s[i];
            else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n && s[i] <= 0xC3) out[k++] = (unsigned char)(((s[i] & 3) << 6) | (s[i + 1] & 0x3F)), i++;
            else { free(out); FAIL("_codecs.encode: a character outside latin-1"); }
        }
        Value *v = new_str(vm, V_BYTES, out, k);
        free(out);
        return push(vm, v);
    }
    case G_STORAGE:
        break;
    }
    FAIL("calling a storage type is not allowed");
}

static int run(Vm *vm, Value **result) {
    int64_t steps = 0;
    while (vm->p < vm->end) {
        if (++steps > 4 * (int64_t)PT_MAX_VALUES) FAIL("too many instructions");
        unsigned op = *vm->p++;
        Value *v, *a, *b;
        int m;
        switch (op) {
        case 0x80: if (need(vm, 1)) return -1; if (*vm->p > 5) FAIL("pickle protocol %d", *vm->p); vm->p++; break;   /* PROTO */
        case 0x95: if (need(vm, 8)) return -1; vm->p += 8; break;                                     /* FRAME */
        case '}': if (push(vm, vnew(vm->f, V_DICT))) return -1; break;
        case ']': if (push(vm, vnew(vm->f, V_LIST))) return -1; break;
        case ')': if (push(vm, vnew(vm->f, V_TUPLE))) return -1; break;
        case '(': if (push(vm, vnew(vm->f, V_MARK))) return -1; break;
        case 'N': if (push(vm, vnew(vm->f, V_NONE))) return -1; break;
        case 0x88: case 0x89:                                                                         /* NEWTRUE/NEWFALSE */
            if (push(vm, v = vnew(vm->f, V_BOOL))) return -1;
            v->i = op == 0x88;
            break;
        case 'J': if (need(vm, 4)) return -1; if (push(vm, v = vnew(vm->f, V_INT))) return -1; v->i = (int32_t)rd32(vm->p); vm->p += 4; break;
        case 'K': if (need(vm, 1)) return -1; if (push(vm, v = vnew(vm->f, V_INT))) return -1; v->i = *vm->p++; break;
        case 'M': if (need(vm, 2)) return -1; if (push(vm, v = vnew(vm->f, V_INT))) return -1; v->i = rd16(vm->p); vm->p += 2; break;
        case 0x8a: {                                                                                  /* LONG1 */
            if (need(vm, 1)) return -1;
            unsigned n = *vm->p++;
            if (n > 8 || need(vm, n)) FAIL("integer longer than 8 bytes");
            uint64_t x = 0;
            for (unsigned i = 0; i < n; i++) x |= (uint64_t)vm->p[i] << (8 * i);
            if (n > 0 && n < 8 && (vm->p[n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n);   /* sign-extend */
            vm->p += n;
            if (push(vm, v = vnew(vm->f, V_INT))) return -1;
            v->i = (int64_t)x;
            break;
        }
        case 'G': {                                                                                   /* BINFLOAT, big-endian */
            if (need(vm, 8)) return -1;
            uint64_t x = 0;
            for (int i = 0; i < 8; i++) x = x << 8 | vm->p[i];
            vm->p += 8;
            if (push(vm, v = vnew(vm->f, V_FLOAT))) return -1;
            memcpy(&v->f, &x, 8);
            break;
        }
        case 'X': case 0x8c: case 0x8d: case 'T': case 'U': case 'B': case 'C': case 0x8e: {          /* strings, bytes */
            size_t n, w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
            if (need(vm, w)) return -1;
            n = w == 1 ? *vm->p : w == 4 ? rd32(vm->p) : (size_t)rd64(vm->p);
            vm->p += w;
            if (n > PT_MAX_PKL || need(vm, n)) FAIL("string past the end of data.pkl");
            VKind k = (op == 'B' || op == 'C' || op == 0x8e) ? V_BYTES : V_STR;
            if (push(vm, new_str(vm, k, vm->p, n))) return -1;
            vm->p += n;
            break;
        }
        case 't': case 0x85: case 0x86: case 0x87: {                                                  /* tuples */
            int from;
            if (op == 't') {
                if ((from = find_mark(vm)) < 0) FAIL("TUPLE without a mark");
            } else {
                from = vm->sp - (int)(op - 0x84);
                if (from < 0 || find_mark(vm) >= from) FAIL("TUPLE%d on a short stack", (int)(op - 0x84));
            }
            if (!(v = vnew(vm->f, V_TUPLE))) FAIL("out of memory");
            for (int i = from + (op == 't'); i < vm->sp; i++)
                if (vpush(v, vm->stack[i])) FAIL("out of memory");
            truncate_to(vm, from);
            if (push(vm, v)) return -1;
            break;
        }
        case 's': case 'u': case 'a': case 'e': {                                                     /* SETITEM(S), APPEND(S) */
            bool many = op == 'u' || op == 'e', dict = op == 's' || op == 'u';
            int from = many ? find_mark(vm) : vm->sp - (dict ? 2 : 1);
            if (from < 1 || (!many && find_mark(vm) >= from)) FAIL("SETITEM/APPEND on a short stack");
            Value *c = vm->stack[from - 1];
            if (c->k != (dict ? V_DICT : V_LIST)) FAIL("SETITEM/APPEND on a %s", dict ? "non-dict" : "non-list");
            int first = from + many;
            if (dict && (vm->sp - first) % 2) FAIL("SETITEMS with an odd count");
            for (int i = first; i < vm->sp; i++)
                if (vpush(c, vm->stack[i])) FAIL("out of memory");
            truncate_to(vm, from);
            break;
        }
        case 'q': if (need(vm, 1)) return -1; if (vm->sp == 0 || memo_put(vm, *vm->p, vm->stack[vm->sp - 1])) FAIL("bad BINPUT"); vm->p++; break;
        case 'r': if (need(vm, 4)) return -1; if (vm->sp == 0 || memo_put(vm, rd32(vm->p), vm->stack[vm->sp - 1])) FAIL("bad LONG_BINPUT"); vm->p += 4; break;
        case 0x94: if (vm->sp == 0) FAIL("MEMOIZE on an empty stack"); {                              /* MEMOIZE */
                int64_t idx = 0;
                while (idx < vm->n_memo && vm->memo[idx]) idx++;
                if (memo_put(vm, idx, vm->stack[vm->sp - 1])) return -1;
            }
            break;
        case 'h': case 'j': {                                                                         /* BINGET, LONG_BINGET */
            size_t w = op == 'h' ? 1 : 4;
            if (need(vm, w)) return -1;
            int64_t idx = w == 1 ? *vm->p : rd32(vm->p);
            vm->p += w;
            if (idx >= vm->n_memo || !vm->memo[idx]) FAIL("memo %lld read before it was written", (long long)idx);
            if (push(vm, vm->memo[idx])) return -1;
            break;
        }
        case 'c': {                                                                                   /* GLOBAL "mod\nname\n" */
            const unsigned char *nl1 = memchr(vm->p, '\n', (size_t)(vm->end - vm->p));
            const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(vm->end - nl1 - 1)) : NULL;
            if (!nl2 || nl1 - vm->p > 200 || nl2 - nl1 > 200) FAIL("malformed GLOBAL");
            char mod[201], name[201];
            memcpy(mod, vm->p, (size_t)(nl1 - vm->p)), mod[nl1 - vm->p] = 0;
            memcpy(name, nl1 + 1, (size_t)(nl2 - nl1 - 1)), name[nl2 - nl1 - 1] = 0;
            vm->p = nl2 + 1;
            if (global(vm, mod, name)) return -1;
            break;
        }
        case 0x93:                                                                                    /* STACK_GLOBAL */
            b = pop(vm), a = pop(vm);
            if (!a || !b || a->k != V_STR || b->k != V_STR) FAIL("malformed STACK_GLOBAL");
            if (global(vm, a->s, b->s)) return -1;
            break;
        case 'R': if (reduce(vm)) return -1; break;
        case 0x81:                                                                                    /* NEWOBJ cls args */
            b = pop(vm), a = pop(vm);
            if (!a || a->k != V_GLOBAL || a->i != G_ODICT || !b || b->k != V_TUPLE || b->n) FAIL("NEWOBJ of a disallowed class");
            if (push(vm, vnew(vm->f, V_DICT))) return -1;
            break;
        case 'b':                                                                                     /* BUILD: state ignored */
            b = pop(vm);
            if (!b || vm->sp == 0) FAIL("BUILD on a short stack");
            a = vm->stack[vm->sp - 1];
            if (a->k != V_DTYPE && a->k != V_DICT && a->k != V_TENSOR) FAIL("BUILD on an unexpected object");
            break;
        case 'Q': if (persistent_load(vm, pop(vm))) return -1; break;                                 /* BINPERSID */
        case '0': if (!pop(vm)) FAIL("POP on an empty stack"); break;
        case '1': if ((m = find_mark(vm)) < 0) FAIL("POP_MARK without a mark"); truncate_to(vm, m); break;
        case '2': if (vm->sp == 0 || push(vm, vm->stack[vm->sp - 1])) FAIL("bad DUP"); break;
        case '.':                                                                                     /* STOP */
            if (vm->sp != 1 || vm->stack[0]->k == V_MARK) FAIL("STOP with %d objects on the stack", vm->sp);
            *result = vm->stack[0];
            return 0;
        default:
            FAIL("unsupported pickle opcode 0x%02x at byte %ld of data.pkl", op, (long)(vm->p - 1 - vm->begin));
        }
    }
    FAIL("data.pkl ends without STOP (truncated)");
}

/* ------------------------------------------------------------------ naming tensors by their path */

static int add_entry(PtFile *f, const PtEntry *raw, const char *name) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 256;
        PtEntry *e = realloc(f->entries, sizeof *e * (size_t)cap);
        if (!e) return -1;
        f->entries = e, f->cap = cap;
    }
    f->entries[f->n] = *raw;
    if (!(f->entries[f->n].name = strdup(name))) return -1;
    f->n++;
    return 0;
}

static int walk(PtFile *f, const Value *v, char *path, size_t len, int depth) {
    if (depth > PT_MAX_DEPTH) {
        t_set_errmsg("%s: the pickled object is nested more than %d deep", f->path, PT_MAX_DEPTH);
        return -1;
    }
    if (v->k == V_TENSOR) {
        if (add_entry(f, &f->raw[v->i], path)) {
            t_set_errmsg("%s: out of memory", f->path);
            return -1;
        }
        return 0;
    }
    bool dict = v->k == V_DICT;
    if (!dict && v->k != V_LIST && v->k != V_TUPLE) return 0;
    for (int i = 0; i < v->n; i += dict ? 2 : 1) {
        char key[160];
        if (dict) {
            const Value *k = v->items[i];
            if (k->k == V_STR) snprintf(key, sizeof key, "%s", k->s);
            else if (k->k == V_INT) snprintf(key, sizeof key, "%lld", (long long)k->i);
            else continue;   /* keys of other kinds name nothing a model needs */
        } else {
            snprintf(key, sizeof key, "%d", i);
        }
        size_t kl = strlen(key), at = len ? len + 1 : 0;
        if (at + kl + 1 > 4096) {
            t_set_errmsg("%s: a tensor path longer than 4 KB", f->path);
            return -1;
        }
        if (len) path[len] = '.';
        memcpy(path + at, key, kl + 1);
        if (walk(f, dict ? v->items[i + 1] : v->items[i], path, at + kl, depth + 1)) return -1;
        path[len] = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ API */

void pt_close(PtFile *f) {
    if (!f) return;
    pool_free(f);
    for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    free(f->entries);
    free(f->raw);
    free(f->storages);
    for (int i = 0; i < f->zip.n; i++) {
        free(f->zip.e[i].name);
        free(f->zip.e[i].inflated);
    }
    free(f->zip.e);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

PtFile *pt_open(const char *path) {
    PtFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        t_set_errmsg("%s: out of memory", path);
        return NULL;
    }
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        t_set_errmsg("%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        pt_close(f);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 4) {
        t_set_errmsg("%s: not a regular file of a PyTorch checkpoint's size", path);
        close(fd);
        pt_close(f);
        return NULL;
    }
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        t_set_errmsg("%s: mmap failed: %s", path, strerror(errno));
        pt_close(f);
        return NULL;
    }
    const unsigned char *m = f->map;
    if (rd32(m) != 0x04034b50) {
        t_set_errmsg("%s: not a zip file: %s", path,
                     m[0] == 0x80 ? "this is PyTorch's legacy format; re-save it with torch.save(obj, path) from a "
                                    "recent PyTorch (the zip format, the default since 1.6)"
                                  : "no PyTorch checkpoint signature");
        pt_close(f);
        return NULL;
    }
    f->zip = (Zip){path, m, f->map_len, NULL, 0};
    if (zip_parse(&f->zip)) {
        pt_close(f);
        return NULL;
    }
    ZipEntry *pkl = NULL;
    for (int i = 0; i < f->zip.n; i++) {
        const char *n = f->zip.e[i].name, *s = strrchr(n, '/');
        if (s && s == strchr(n, '/') && !strcmp(s, "/data.pkl")) {   /* "<archive>/data.pkl" */
            size_t pl = (size_t)(s - n) + 1;
            if (pl >= sizeof f->prefix) break;
            memcpy(f->prefix, n, pl);
            f->prefix[pl] = 0;
            pkl = &f->zip.e[i];
            break;
        }
    }
    if (!pkl) {
        t_set_errmsg("%s: no <archive>/data.pkl in the zip: not a torch.save checkpoint", path);
        pt_close(f);
        return NULL;
    }
    if (pkl->usize > PT_MAX_PKL) {
        t_set_errmsg("%s: data.pkl of %llu bytes is not a checkpoint's", path, (unsigned long long)pkl->usize);
        pt_close(f);
        return NULL;
    }
    const unsigned char *code = zip_data(&f->zip, pkl);
    if (!code) {
        pt_close(f);
        return NULL;
    }
    Vm vm = {.f = f, .begin = code, .p = code, .end = code + pkl->usize};
    Value *root = NULL;
    int rc = run(&vm, &root);
    if (rc) t_set_errmsg("%s: %s", path, vm.err);
    free(vm.stack);
    free(vm.marks);
    free(vm.memo);
    char *buf = rc ? NULL : malloc(4096);
    if (!rc && !buf) {
        t_set_errmsg("%s: out of memory", path);
        rc = -1;
    }
    if (!rc) {
        buf[0] = 0;
        rc = walk(f, root, buf, 0, 0);
    }
    free(buf);
    pool_free(f);
    if (rc) {
        pt_close(f);
        return NULL;
    }
    return f;
}

int pt_count(const PtFile *f) { return f->n; }
const char *pt_path(const PtFile *f) { return f->path; }
const PtEntry *pt_entry(const PtFile *f, int i) { return i >= 0 && i < f->n ? &f->entries[i] : NULL; }

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    if (e == 0) {
        if (m == 0) bits = s;
        else {   /* subnormal: normalise */
            e = 127 - 15 + 1;
            while (!(m & 0x400)) m <<= 1, e--;
            bits = s | e << 23 | (m & 0x3FF) << 13;
        }
    } else if (e == 31) {
        bits = s | 0xFF << 23 | m << 13;
    } else {
        bits = s | (e + 127 - 15) << 23 | m << 13;
    }
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

int pt_read_f32(PtFile *f, const PtEntry *e, float *out) {
    if (e->dtype != PT_F32 && e->dtype != PT_F16 && e->dtype != PT_BF16 && e->dtype != PT_F64) {
        t_set_errmsg("%s: %s is %s, not a floating-point tensor", f->path, e->name, pt_dtype_name(e->dtype));
        return -1;
    }
    Storage *st = &f->storages[e->storage];
    const unsigned char *d = zip_data(&f->zip, st->entry);
    if (!d) return -1;
    int64_t numel = 1;
    for (int k = 0; k < e->ndim; k++) numel *= e->shape[k];
    int64_t idx[T_MAX_DIMS] = {0};
    size_t es = elsize[e->dtype];
    /* row-major contiguous (every tensor of the official checkpoints): a run of numel elements at offset,
     * inside the storage (checked when the entry was parsed) */
    bool contiguous = true;
    int64_t want = 1;
    for (int k = e->ndim - 1; k >= 0; k--) {
        if (e->shape[k] > 1 && e->stride[k] != want) contiguous = false;
        want *= e->shape[k];
    }
    if (contiguous && e->dtype == PT_F32) {
        if (numel > 0) memcpy(out, d + (size_t)e->offset * es, (size_t)numel * es);
    } else {
        for (int64_t i = 0; i < numel; i++) {
            int64_t off = e->offset;
            for (int k = 0; k < e->ndim; k++) off += idx[k] * e->stride[k];
            const unsigned char *p = d + (size_t)off * es;
            switch (e->dtype) {
            case PT_F32: memcpy(&out[i], p, 4); break;
            case PT_F16: out[i] = half_to_float(rd16(p)); break;
            case PT_BF16: { uint32_t b = (uint32_t)rd16(p) << 16; memcpy(&out[i], &b, 4); break; }
            case PT_F64: { double x; memcpy(&x, p, 8); out[i] = (float)x; break; }
            default: break;
            }
            for (int k = e->ndim - 1; k >= 0; k--) {
                if (++idx[k] < e->shape[k]) break;
                idx[k] = 0;
            }
        }
    }
    /* the file's pages of this storage were only needed for the copy: give them back, so that loading a
     * 1.7 GB checkpoint costs about the model's size, not the model plus the file (they fault in again if
     * another tensor shares the storage) */
    if (st->entry->method == 0) {
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)d, hi = lo + st->entry->usize;
        lo = (lo + page - 1) / page * page, hi = hi / page * page;
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    return 0;
}
