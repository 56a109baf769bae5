/* The CLIP BPE tokenizer (see clip/tokenizer.h for the pipeline and what is not reproduced). */
#include "clip/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAX_VOCAB_FILE_BYTES ((size_t)256 << 20) /* the official file is 3.2 MB decompressed */
#define MAX_MERGES 10000000
#define CACHE_LIMIT 32768                          /* words kept before the cache is emptied */

/* ---- bytes_to_unicode ---------------------------------------------------------------------- */

static int byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* Symbol order: the 188 printable bytes (mapped to themselves) in increasing order, then the 68
 * others -- 0..32, 127..160, 173 -- mapped to U+0100, U+0101, ... in increasing order. */
int clip_byte_symbol(uint8_t b) {
    if (b >= '!' && b <= '~') return b - '!';
    if (b >= 0xA1 && b <= 0xAC) return 94 + (b - 0xA1);
    if (b >= 0xAE) return 106 + (b - 0xAE);
    if (b <= 32) return 188 + b;
    if (b <= 160) return 188 + 33 + (b - 127);
    return 188 + 67; /* 0xAD */
}

uint32_t clip_byte_char(uint8_t b) {
    if (byte_is_printable(b)) return b;
    return 256u + (uint32_t)(clip_byte_symbol(b) - 188);
}

int clip_char_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable((int)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    int n = (int)(cp - 256);
    return n < 33 ? n : n < 67 ? 127 + (n - 33) : 0xAD;
}

int clip_base_symbol_text(int id, char out[9]) {
    int k = id % 256, b;
    if (k < 94) b = '!' + k;
    else if (k < 106) b = 0xA1 + (k - 94);
    else if (k < 188) b = 0xAE + (k - 106);
    else b = clip_char_byte(256u + (uint32_t)(k - 188));
    int n = utf8_encode(clip_byte_char((uint8_t)b), out);
    if (id >= 256) { memcpy(out + n, "</w>", 4); n += 4; }
    out[n] = 0;
    return n;
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* One code point at s[i]; invalid input yields U+FFFD for its maximal invalid subpart, as Python's
 * decoder with errors="replace" does. Returns the bytes consumed (>= 1). */
static size_t utf8_next(const uint8_t *s, size_t len, size_t i, uint32_t *cp) {
    uint8_t b0 = s[i];
    if (b0 < 0x80) { *cp = b0; return 1; }
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else { *cp = 0xFFFD; return 1; }
    uint32_t v = b0 & (0x3F >> need);
    size_t k = 1;
    for (; k <= (size_t)need; k++) {
        if (i + k >= len) break;
        uint8_t c = s[i + k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
        v = (v << 6) | (c & 0x3F);
    }
    if (k <= (size_t)need) { *cp = 0xFFFD; return k; }
    *cp = v;
    return k;
}

size_t utf8_decode(const char *s, size_t len, uint32_t *out) {
    size_t n = 0;
    for (size_t i = 0; i < len;) i += utf8_next((const uint8_t *)s, len, i, &out[n++]);
    return n;
}

int utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- html.unescape ------------------------------------------------------------------------- */

static int is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int hex_value(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* Writes the UTF-8 string's code points at out; returns how many. */
static size_t put_utf8(const char *u, uint32_t *out) {
    return utf8_decode(u, strlen(u), out);
}

/* Python's pattern: &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?). The output never
 * outruns the input (a replacement is never longer than its reference), so this works in place. */
size_t html_unescape(uint32_t *s, size_t n) {
    size_t r = 0, w = 0;
    while (r < n) {
        if (s[r] != '&') { s[w++] = s[r++]; continue; }
        size_t j = r + 1;
        if (j < n && s[j] == '#') {
            int hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X') && j + 2 < n && hex_value(s[j + 2]) >= 0;
            size_t k = j + (hex ? 2 : 1);
            if (!hex && !(k < n && is_ascii_digit(s[k]))) { s[w++] = s[r++]; continue; }
            uint64_t num = 0;
            for (; k < n && (hex ? hex_value(s[k]) >= 0 : is_ascii_digit(s[k])); k++) {
                num = num * (hex ? 16 : 10) + (uint64_t)(hex ? hex_value(s[k]) : (int)(s[k] - '0'));
                if (num > 0x110000) num = 0x110000; /* saturate: anything above 0x10FFFF is U+FFFD */
            }
            if (k < n && s[k] == ';') k++;
            int64_t cp = html_numeric_ref(num);
            if (cp >= 0) s[w++] = (uint32_t)cp;
            r = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' && s[k] != '\f' && s[k] != ' ' &&
               s[k] != '<' && s[k] != '&' && s[k] != '#' && s[k] != ';')
            k++;
        if (k == j) { s[w++] = s[r++]; continue; }
        if (k < n && s[k] == ';') k++;
        /* s[j..k) is the reference name; try it whole, then its prefixes from long to 2 chars */
        char name[34];
        size_t len = k - j, ascii = 0;
        while (ascii < len && s[j + ascii] < 0x80) { name[ascii] = (char)s[j + ascii]; ascii++; }
        const char *rep = NULL;
        size_t used = 0;
        if (ascii == len) { rep = html_entity_lookup(name, len); used = len; }
        for (size_t x = len - 1; !rep && x >= 2; x--)
            if (x <= ascii && (rep = html_entity_lookup(name, x))) used = x;
        if (!rep) { s[w++] = s[r++]; continue; } /* no reference: '&' stays, rescan after it */
        uint32_t tmp[4];
        size_t m = put_utf8(rep, tmp);
        for (size_t t = 0; t < m; t++) s[w++] = tmp[t];
        r = j + used;
    }
    return w;
}

/* ---- normalisation: basic_clean + whitespace_clean + lower --------------------------------- */

static int has_class(uint32_t cp, unsigned c) { return (unicode_class(cp) & c) != 0; }

/* Python's final-sigma rule: capital sigma preceded by a cased letter (skipping case-ignorables)
 * and not followed by one becomes final sigma. */
static uint32_t lower_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && has_class(s[j - 1], UC_CASE_IGNORABLE)) j--;
    if (j == 0 || !has_class(s[j - 1], UC_CASED)) return 0x3C3;
    for (j = i + 1; j < n && has_class(s[j], UC_CASE_IGNORABLE); j++) {}
    return (j < n && has_class(s[j], UC_CASED)) ? 0x3C3 : 0x3C2;
}

static size_t strip_py(uint32_t *s, size_t n) {
    size_t a = 0;
    while (a < n && has_class(s[a], UC_SPACE_PY)) a++;
    while (n > a && has_class(s[n - 1], UC_SPACE_PY)) n--;
    memmove(s, s + a, (n - a) * sizeof *s);
    return n - a;
}

static int contains_amp(const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '&') return 1;
    return 0;
}

uint32_t *clip_normalize(const char *text, size_t *n_out) {
    size_t len = strlen(text);
    uint32_t *s = malloc((len + 1) * sizeof *s);
    if (!s) return NULL;
    size_t n = utf8_decode(text, len, s);
    for (int pass = 0; pass < 2 && contains_amp(s, n); pass++) n = html_unescape(s, n);
    n = strip_py(s, n);
    size_t w = 0; /* collapse \s+ to one space */
    int in_space = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = has_class(s[i], UC_SPACE_RE);
        if (!sp) s[w++] = s[i];
        else if (!in_space) s[w++] = ' ';
        in_space = sp;
    }
    n = strip_py(s, w);
    uint32_t *low = malloc((n * UNICODE_LOWER_MAX + 1) * sizeof *low);
    if (!low) { free(s); return NULL; }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0x3A3) { low[m++] = lower_sigma(s, n, i); continue; }
        m += (size_t)unicode_lower(s[i], low + m);
    }
    free(s);
    *n_out = m;
    return low;
}

/* ---- CLIP's split pattern (case-insensitive) ----------------------------------------------- */

/* Does code point c match the ASCII pattern character p under IGNORECASE (simple case folding)? */
static int ci_match(uint32_t c, char p) {
    if (c == (uint32_t)p) return 1;
    if (p >= 'a' && p <= 'z' && c == (uint32_t)(p - 32)) return 1;
    if (p == 's' && c == 0x17F) return 1;  /* LATIN SMALL LETTER LONG S folds to s */
    if (p == 'k' && c == 0x212A) return 1; /* KELVIN SIGN folds to k */
    return 0;
}

static size_t match_literal(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || !ci_match(s[i + k], lit[k])) return 0;
    return k;
}

static const char *const alternatives[] = {"<start_of_text>", "<end_of_text>", "'s", "'t", "'re", "'ve",
                                           "'m", "'ll", "'d"};

int clip_next_piece(const uint32_t *s, size_t n, size_t *pos, size_t *start, size_t *end) {
    size_t i = *pos;
    for (; i < n; i++) {
        size_t len = 0;
        for (size_t a = 0; a < sizeof alternatives / sizeof *alternatives && !len; a++)
            len = match_literal(s, n, i, alternatives[a]);
        if (!len) {
            unsigned c = unicode_class(s[i]);
            unsigned run = (c & UC_LETTER) ? UC_LETTER : (c & UC_PUNCT) ? UC_PUNCT : 0;
            if (c & UC_NUMBER) len = 1; /* [\p{N}]: one digit at a time */
            else if (run) {
                len = 1;
                while (i + len < n && has_class(s[i + len], run)) len++;
            }
        }
        if (len) {
            *start = i;
            *end = i + len;
            *pos = i + len;
            return 1;
        }
    }
    *pos = n;
    return 0;
}

/* ---- hash maps ----------------------------------------------------------------------------- */

uint64_t clip_hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)p[i]; h *= 1099511628211ull; }
    return h;
}

static uint64_t hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

typedef struct { uint64_t key; int32_t rank, result; } PairSlot; /* key 0 = empty (ids+1 used) */

typedef struct {
    char *key;    /* UTF-8 piece, followed in the same block by the ids */
    size_t klen;
    int32_t *ids;
    int n;
} CacheSlot;

struct Tokenizer {
    int n_merges, vocab_size;
    char *strings;          /* all symbol strings, NUL-separated */
    size_t *offset;         /* id -> offset in strings */
    int32_t *str_table;     /* string hash map: slot -> id (-1 empty); last id wins */
    size_t str_cap;
    PairSlot *pairs;        /* (left id, right id) -> merge rank and merged id */
    size_t pair_cap;
    int32_t base[256], base_w[256]; /* byte -> symbol id, without and with </w> */
    CacheSlot *cache;
    size_t cache_cap, cache_n;
};

static const char *sym(const Tokenizer *t, int32_t id) { return t->strings + t->offset[id]; }

static int32_t str_find(const Tokenizer *t, const char *s, size_t len) {
    size_t mask = t->str_cap - 1;
    for (size_t h = clip_hash_bytes(s, len) & mask;; h = (h + 1) & mask) {
        int32_t id = t->str_table[h];
        if (id < 0) return -1;
        const char *k = sym(t, id);
        if (!strncmp(k, s, len) && k[len] == 0) return id;
    }
}

static void str_insert(Tokenizer *t, int32_t id) {
    const char *s = sym(t, id);
    size_t len = strlen(s), mask = t->str_cap - 1;
    for (size_t h = clip_hash_bytes(s, len) & mask;; h = (h + 1) & mask) {
        int32_t old = t->str_table[h];
        if (old < 0 || !strcmp(sym(t, old), s)) { t->str_table[h] = id; return; }
    }
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static PairSlot *pair_slot(const Tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    size_t mask = t->pair_cap - 1;
    for (size_t h = hash_u64(key) & mask;; h = (h + 1) & mask)
        if (t->pairs[h].key == key || t->pairs[h].key == 0) return &t->pairs[h];
}

/* ---- loading ------------------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Whole (gzip or plain) file into a NUL-terminated buffer. */
static char *read_gz(const char *path, size_t *len_out, char *err, size_t errlen) {
    /* a FIFO or a device would block or never end: only regular files are vocabularies */
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "not a regular file");
        return NULL;
    }
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib failure");
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) { set_err(err, errlen, "%s: out of memory", path); break; }
        if (len == cap) {
            if (cap >= MAX_VOCAB_FILE_BYTES) {
                set_err(err, errlen, "%s: larger than %zu MB, not a BPE merges file", path, MAX_VOCAB_FILE_BYTES >> 20);
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { set_err(err, errlen, "%s: out of memory", path); break; }
            buf = nb;
        }
        int want = (int)(cap - len < (1u << 30) ? cap - len : (1u << 30));
        int got = gzread(f, buf + len, (unsigned)want);
        int zerr = Z_OK;
        const char *msg = gzerror(f, &zerr);
        if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
            set_err(err, errlen, "%s: corrupt or truncated gzip data (%s)", path, msg ? msg : "read error");
            break;
        }
        if (got == 0) {
            gzclose(f);
            buf[len] = 0;
            *len_out = len;
            return buf;
        }
        len += (size_t)got;
    }
    gzclose(f);
    free(buf);
    return NULL;
}

/* A merge half: non-empty, made only of byte-level characters (so it cannot contain whitespace). */
static int valid_symbol_text(const char *s, size_t len) {
    if (!len) return 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_next((const uint8_t *)s, len, i, &cp);
        if (cp == 0xFFFD || clip_char_byte(cp) < 0) return 0;
        i += k;
    }
    return 1;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; t->cache && i < t->cache_cap; i++) free(t->cache[i].key);
    free(t->cache);
    free(t->strings);
    free(t->offset);
    free(t->str_table);
    free(t->pairs);
    free(t);
}

static int build_maps(Tokenizer *t, const char *const *line, const size_t *line_len) {
    int V = t->vocab_size;
    t->str_cap = pow2_at_least((size_t)V * 2);
    t->str_table = malloc(t->str_cap * sizeof *t->str_table);
    t->pair_cap = pow2_at_least((size_t)t->n_merges * 2 + 2);
    t->pairs = calloc(t->pair_cap, sizeof *t->pairs);
    t->cache_cap = pow2_at_least(CACHE_LIMIT * 2);
    t->cache = calloc(t->cache_cap, sizeof *t->cache);
    if (!t->str_table || !t->pairs || !t->cache) return -1;
    memset(t->str_table, 0xff, t->str_cap * sizeof *t->str_table);
    for (int32_t id = 0; id < V; id++) str_insert(t, id); /* later ids overwrite: dict(zip(vocab, range)) */
    for (int b = 0; b < 256; b++) {
        int k = clip_byte_symbol((uint8_t)b);
        t->base[b] = str_find(t, sym(t, k), strlen(sym(t, k)));
        t->base_w[b] = str_find(t, sym(t, 256 + k), strlen(sym(t, 256 + k)));
    }
    for (int r = 0; r < t->n_merges; r++) {
        const char *sp = memchr(line[r], ' ', line_len[r]);
        int32_t a = str_find(t, line[r], (size_t)(sp - line[r]));
        int32_t b = str_find(t, sp + 1, line_len[r] - (size_t)(sp - line[r]) - 1);
        if (a < 0 || b < 0) continue; /* a half that is no symbol: the pair can never occur */
        PairSlot *ps = pair_slot(t, a, b);
        ps->key = pair_key(a, b);
        ps->rank = r; /* a repeated merge keeps its last rank, as in Python */
        ps->result = str_find(t, sym(t, 512 + r), strlen(sym(t, 512 + r)));
    }
    return 0;
}

Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = read_gz(path, &len, err, errlen);
    if (!text) return NULL;
    Tokenizer *t = calloc(1, sizeof *t);
    const char **line = NULL;
    size_t *line_len = NULL;
    if (!t) goto oom;
    if (memchr(text, 0, len)) { set_err(err, errlen, "%s: contains NUL bytes, not a BPE merges file", path); goto fail; }
    char *eol = strchr(text, '\n');
    size_t hlen = eol ? (size_t)(eol - text) : len;
    char header[256];
    snprintf(header, sizeof header, "%.*s", (int)(hlen < 255 ? hlen : 255), text);
    if (!strstr(header, "#version")) {
        set_err(err, errlen, "%s: not a CLIP BPE merges file (first line should be a '#version' header)", path);
        goto fail;
    }
    long want = CLIP_OFFICIAL_MERGES;
    const char *m = strstr(header, "merges=");
    if (m) {
        char *endp;
        errno = 0;
        want = strtol(m + 7, &endp, 10);
        if (endp == m + 7 || errno || want < 0 || want > MAX_MERGES) {
            set_err(err, errlen, "%s: bad merge count in header '%s'", path, header);
            goto fail;
        }
    }
    t->n_merges = (int)want;
    t->vocab_size = 512 + t->n_merges + 2;
    line = malloc(((size_t)want + 1) * sizeof *line);
    line_len = malloc(((size_t)want + 1) * sizeof *line_len);
    if (!line || !line_len) goto oom;
    const char *p = eol ? eol + 1 : text + len;
    for (long r = 0; r < want; r++) {
        if (p >= text + len) {
            set_err(err, errlen, "%s: truncated: %ld merge lines, expected %ld", path, r, want);
            goto fail;
        }
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : (size_t)(text + len - p);
        if (l && p[l - 1] == '\r') l--;
        const char *sp = memchr(p, ' ', l);
        if (!sp || !valid_symbol_text(p, (size_t)(sp - p)) || !valid_symbol_text(sp + 1, l - (size_t)(sp - p) - 1)) {
            set_err(err, errlen, "%s:%ld: malformed merge line (want two byte-level symbols separated by one space)",
                    path, r + 2);
            goto fail;
        }
        line[r] = p;
        line_len[r] = l;
        p = e ? e + 1 : text + len;
    }
    /* symbol strings: bytes, bytes + </w>, merges, specials */
    size_t total = 0;
    for (long r = 0; r < want; r++) total += line_len[r];
    total += 512 * 9 + 64;
    t->strings = malloc(total);
    t->offset = malloc((size_t)t->vocab_size * sizeof *t->offset);
    if (!t->strings || !t->offset) goto oom;
    size_t at = 0;
    for (int k = 0; k < 512; k++) {
        t->offset[k] = at;
        at += (size_t)clip_base_symbol_text(k, t->strings + at) + 1;
    }
    for (long r = 0; r < want; r++) {
        t->offset[512 + r] = at;
        for (size_t i = 0; i < line_len[r]; i++)
            if (line[r][i] != ' ') t->strings[at++] = line[r][i];
        t->strings[at++] = 0;
    }
    const char *special[2] = {"<start_of_text>", "<end_of_text>"};
    for (int i = 0; i < 2; i++) {
        t->offset[512 + want + i] = at;
        memcpy(t->strings + at, special[i], strlen(special[i]) + 1);
        at += strlen(special[i]) + 1;
    }
    if (build_maps(t, line, line_len)) goto oom;
    free(line);
    free(line_len);
    free(text);
    return t;
oom:
    set_err(err, errlen, "%s: out of memory", path);
fail:
    free(line);
    free(line_len);
    free(text);
    tokenizer_free(t);
    return NULL;
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int tokenizer_n_merges(const Tokenizer *t) { return t->n_merges; }
int32_t tokenizer_sot(const Tokenizer *t) { return t->vocab_size - 2; }
int32_t tokenizer_eot(const Tokenizer *t) { return t->vocab_size - 1; }

const char *tokenizer_id_string(const Tokenizer *t, int32_t id) {
    return (id >= 0 && id < t->vocab_size) ? sym(t, id) : NULL;
}

/* ---- BPE ----------------------------------------------------------------------------------- */

/* Merges the symbols of one piece in place, lowest rank first; returns the new count. */
static int bpe_merge(const Tokenizer *t, int32_t *s, int n) {
    while (n > 1) {
        int32_t best = INT32_MAX, a = -1, b = -1, res = -1;
        for (int i = 0; i + 1 < n; i++) {
            const PairSlot *ps = pair_slot(t, s[i], s[i + 1]);
            if (ps->key && ps->rank < best) { best = ps->rank; a = s[i]; b = s[i + 1]; res = ps->result; }
        }
        if (a < 0) break;
        int w = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[w++] = res; i += 2; }
            else s[w++] = s[i++];
        }
        n = w;
    }
    return n;
}

static void cache_clear(Tokenizer *t) {
    for (size_t i = 0; i < t->cache_cap; i++) { free(t->cache[i].key); t->cache[i].key = NULL; }
    t->cache_n = 0;
}

/* ids of one piece (UTF-8 bytes p[0..len)), from the cache or computed; NULL on OOM. */
static const CacheSlot *piece_ids(Tokenizer *t, const char *p, size_t len) {
    size_t mask = t->cache_cap - 1, h = clip_hash_bytes(p, len) & mask;
    for (; t->cache[h].key; h = (h + 1) & mask)
        if (t->cache[h].klen == len && !memcmp(t->cache[h].key, p, len)) return &t->cache[h];
    if (t->cache_n >= CACHE_LIMIT) { /* bounded: start over rather than grow without limit */
        cache_clear(t);
        for (h = clip_hash_bytes(p, len) & mask; t->cache[h].key; h = (h + 1) & mask) {}
    }
    size_t key_bytes = (len + 1 + sizeof(int32_t) - 1) / sizeof(int32_t) * sizeof(int32_t);
    char *block = malloc(key_bytes + (len ? len : 1) * sizeof(int32_t));
    if (!block) return NULL;
    memcpy(block, p, len);
    block[len] = 0;
    int32_t *ids = (int32_t *)(void *)(block + key_bytes);
    int n = 0;
    if (len == 15 && !memcmp(p, "<start_of_text>", 15)) ids[n++] = tokenizer_sot(t);
    else if (len == 13 && !memcmp(p, "<end_of_text>", 13)) ids[n++] = tokenizer_eot(t);
    else {
        for (size_t i = 0; i < len; i++) ids[n++] = (i + 1 == len ? t->base_w : t->base)[(uint8_t)p[i]];
        n = bpe_merge(t, ids, n);
    }
    CacheSlot *cs = &t->cache[h];
    cs->key = block;
    cs->klen = len;
    cs->ids = ids;
    cs->n = n;
    t->cache_n++;
    return cs;
}

int tokenizer_encode(Tokenizer *t, const char *text, int32_t *ids, int max) {
    size_t n;
    uint32_t *s = clip_normalize(text, &n);
    if (!s) return -1;
    char *buf = malloc(n * 4 + 1);
    if (!buf) { free(s); return -1; }
    int count = 0;
    size_t pos = 0, a, b;
    while (clip_next_piece(s, n, &pos, &a, &b)) {
        size_t len = 0;
        for (size_t i = a; i < b; i++) len += (size_t)utf8_encode(s[i], buf + len);
        const CacheSlot *cs = piece_ids(t, buf, len);
        if (!cs) { count = -1; break; }
        for (int i = 0; i < cs->n; i++, count++)
            if (count < max) ids[count] = cs->ids[i];
    }
    free(buf);
    free(s);
    return count;
}

int tokenizer_tokenize_n(Tokenizer *t, const char *text, int32_t *out, int ctx) {
    if (ctx <= 0) return 0;
    out[0] = tokenizer_sot(t);
    int n = tokenizer_encode(t, text, out + 1, ctx - 1);
    if (n < 0) return -1;
    if (n + 2 > ctx) { out[ctx - 1] = tokenizer_eot(t); return ctx; }
    out[n + 1] = tokenizer_eot(t);
    for (int i = n + 2; i < ctx; i++) out[i] = 0;
    return n + 2;
}

int tokenizer_tokenize(Tokenizer *t, const char *text, int32_t out[TOKENIZER_CONTEXT]) {
    return tokenizer_tokenize_n(t, text, out, TOKENIZER_CONTEXT);
}

/* ---- decode -------------------------------------------------------------------------------- */

typedef struct { char *out; size_t cap, len; } Sink; /* snprintf-style writer */

static void sink_put(Sink *k, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++, k->len++)
        if (k->len + 1 < k->cap) k->out[k->len] = p[i];
}

size_t tokenizer_decode(const Tokenizer *t, const int32_t *ids, int n, char *out, size_t outlen) {
    size_t nbytes = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->vocab_size) nbytes += strlen(sym(t, ids[i]));
    uint8_t *bytes = malloc(nbytes + 1);
    Sink k = {out, outlen, 0};
    if (!bytes) { if (outlen) out[0] = 0; return 0; }
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) continue;
        const char *s = sym(t, ids[i]);
        size_t sl = strlen(s);
        for (size_t j = 0; j < sl;) {
            uint32_t cp;
            j += utf8_next((const uint8_t *)s, sl, j, &cp);
            int b = clip_char_byte(cp);
            if (b >= 0) bytes[m++] = (uint8_t)b;
        }
    }
    for (size_t i = 0; i < m;) {
        if (m - i >= 4 && !memcmp(bytes + i, "</w>", 4)) { sink_put(&k, " ", 1); i += 4; continue; }
        uint32_t cp;
        size_t used = utf8_next(bytes, m, i, &cp);
        char u[4];
        if (cp == 0xFFFD && !(used == 3 && bytes[i] == 0xEF)) sink_put(&k, u, (size_t)utf8_encode(cp, u));
        else sink_put(&k, (const char *)bytes + i, used);
        i += used;
    }
    if (outlen) out[k.len < outlen ? k.len : outlen - 1] = 0;
    free(bytes);
    return k.len;
}
