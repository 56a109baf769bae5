/* JSON reader, text buffer and flat string objects; see json.h. The reader trusts nothing: every byte is
 * checked against the end of the text, so a header cut anywhere fails with the offset of the problem. */
#include "tensor/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"

/* Deeper nesting than any header needs; bounds the recursion of json_skip. */
#define JSON_MAX_DEPTH 64

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

bool json_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
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

/* ------------------------------------------------------------------ reader */

void json_reader_init(JsonReader *j, const char *text, size_t len) {
    j->start = j->s = text;
    j->end = text + len;
    j->err = NULL;
}

size_t json_offset(const JsonReader *j) { return (size_t)(j->s - j->start); }

static void skip_ws(JsonReader *j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++;
}

bool json_fail(JsonReader *j, const char *why) {
    if (!j->err) j->err = why;
    return false;
}

bool json_peek(JsonReader *j, char c) {
    skip_ws(j);
    return j->s < j->end && *j->s == c;
}

bool json_expect(JsonReader *j, char c, const char *why) {
    if (!json_peek(j, c)) return json_fail(j, why);
    j->s++;
    return true;
}

bool json_at_end(JsonReader *j) {
    skip_ws(j);
    return j->s == j->end;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(JsonReader *j, uint32_t *v) {
    if (j->end - j->s < 4) return json_fail(j, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->s[i]);
        if (h < 0) return json_fail(j, "bad \\u escape");
        *v = *v << 4 | (uint32_t)h;
    }
    j->s += 4;
    return true;
}

/* One escape after the backslash: the code point it stands for. */
static bool escape(JsonReader *j, uint32_t *cp) {
    if (j->s >= j->end) return json_fail(j, "unterminated string");
    char e = *j->s++;
    switch (e) {
    case '"': *cp = '"'; return true;
    case '\\': *cp = '\\'; return true;
    case '/': *cp = '/'; return true;
    case 'b': *cp = '\b'; return true;
    case 'f': *cp = '\f'; return true;
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case 'u': break;
    default: return json_fail(j, "bad escape in string");
    }
    if (!hex4(j, cp)) return false;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return json_fail(j, "lone low surrogate");
    if (*cp >= 0xD800 && *cp < 0xDC00) {
        uint32_t lo;
        if (j->end - j->s < 2 || j->s[0] != '\\' || j->s[1] != 'u') return json_fail(j, "lone surrogate");
        j->s += 2;
        if (!hex4(j, &lo)) return false;
        if (lo < 0xDC00 || lo > 0xDFFF) return json_fail(j, "bad surrogate pair");
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (*cp == 0) return json_fail(j, "NUL character in string");
    return true;
}

bool json_string(JsonReader *j, char **out) {
    if (!json_expect(j, '"', "expected a string")) return false;
    /* the decoded text is never longer than the escaped text */
    const char *q = j->s;
    while (q < j->end && *q != '"') q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end) return json_fail(j, "unterminated string");
    char *buf = out ? malloc((size_t)(q - j->s) + 1) : NULL;
    if (out && !buf) return json_fail(j, "out of memory");
    size_t k = 0;
    while (*j->s != '"') {
        unsigned char c = (unsigned char)*j->s;
        char tmp[4];
        size_t w;
        if (c < 0x20) {
            free(buf);
            return json_fail(j, c ? "control character in string" : "NUL character in string");
        }
        if (c == '\\') {
            j->s++;
            uint32_t cp;
            if (!escape(j, &cp)) { free(buf); return false; }
            w = utf8_put(tmp, cp);
        } else {
            w = utf8_seq((const unsigned char *)j->s, (size_t)(j->end - j->s));
            if (!w) { free(buf); return json_fail(j, "invalid UTF-8 in string"); }
            memcpy(tmp, j->s, w);
            j->s += w;
        }
        if (buf) memcpy(buf + k, tmp, w);
        k += w;
    }
    j->s++; /* closing quote */
    if (out) {
        buf[k] = 0;
        *out = buf;
    }
    return true;
}

bool json_uint(JsonReader *j, int64_t *v) {
    skip_ws(j);
    if (j->s >= j->end || *j->s < '0' || *j->s > '9') return json_fail(j, "expected a non-negative integer");
    if (*j->s == '0' && j->end - j->s > 1 && j->s[1] >= '0' && j->s[1] <= '9')
        return json_fail(j, "leading zero in a number");
    int64_t x = 0;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        int d = *j->s++ - '0';
        if (x > (INT64_MAX - d) / 10) return json_fail(j, "integer too large");
        x = x * 10 + d;
    }
    if (j->s < j->end && (*j->s == '.' || *j->s == 'e' || *j->s == 'E')) return json_fail(j, "expected an integer");
    *v = x;
    return true;
}

static bool digits(JsonReader *j) {
    const char *st = j->s;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') j->s++;
    return j->s > st;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number(JsonReader *j) {
    if (j->s < j->end && *j->s == '-') j->s++;
    if (j->s < j->end && *j->s == '0') j->s++;
    else if (!digits(j)) return json_fail(j, "bad number");
    if (j->s < j->end && *j->s == '.') {
        j->s++;
        if (!digits(j)) return json_fail(j, "bad number");
    }
    if (j->s < j->end && (*j->s == 'e' || *j->s == 'E')) {
        j->s++;
        if (j->s < j->end && (*j->s == '+' || *j->s == '-')) j->s++;
        if (!digits(j)) return json_fail(j, "bad number");
    }
    if (j->s < j->end && ((*j->s >= '0' && *j->s <= '9') || *j->s == '.'))
        return json_fail(j, "bad number");
    return true;
}

static bool skip_value(JsonReader *j, int depth) {
    if (depth > JSON_MAX_DEPTH) return json_fail(j, "nested too deeply");
    skip_ws(j);
    if (j->s >= j->end) return json_fail(j, "unexpected end of JSON");
    char c = *j->s;
    if (c == '"') return json_string(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->s++;
        if (json_peek(j, close)) { j->s++; return true; }
        for (;;) {
            if (c == '{' && !(json_string(j, NULL) && json_expect(j, ':', "expected ':'"))) return false;
            if (!skip_value(j, depth + 1)) return false;
            if (json_peek(j, ',')) { j->s++; continue; }
            return json_expect(j, close, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->s) >= n && !memcmp(j->s, words[i], n)) { j->s += n; return true; }
    }
    if (c == '-' || (c >= '0' && c <= '9')) return number(j);
    return json_fail(j, "unexpected character");
}

bool json_skip(JsonReader *j) { return skip_value(j, 1); }

bool json_object(JsonReader *j, JsonMemberFn fn, void *ctx) {
    if (!json_expect(j, '{', "expected an object")) return false;
    if (json_peek(j, '}')) { j->s++; return true; }
    for (;;) {
        char *key = NULL;
        if (!json_string(j, &key)) return false;
        bool ok = json_expect(j, ':', "expected ':'") && fn(j, key, ctx);
        free(key);
        if (!ok) return false;
        if (json_peek(j, ',')) { j->s++; continue; }
        return json_expect(j, '}', "expected ',' or '}'");
    }
}

/* ------------------------------------------------------------------ text buffer */

void json_buf_put(JsonBuf *b, const char *s, size_t n) {
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

void json_buf_str(JsonBuf *b, const char *s) { json_buf_put(b, s, strlen(s)); }

void json_buf_string(JsonBuf *b, const char *s) {
    json_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            json_buf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            json_buf_str(b, esc);
        } else {
            json_buf_put(b, (const char *)&c, 1);
        }
    }
    json_buf_put(b, "\"", 1);
}

/* ------------------------------------------------------------------ flat objects of strings */

void json_object_free(JsonObject *o) {
    for (int i = 0; i < o->n; i++) free(o->items[i].key), free(o->items[i].value);
    free(o->items);
    memset(o, 0, sizeof *o);
}

static JsonPair *find(const JsonObject *o, const char *key) {
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->items[i].key, key)) return &o->items[i];
    return NULL;
}

const char *json_object_get(const JsonObject *o, const char *key) {
    const JsonPair *p = find(o, key);
    return p ? p->value : NULL;
}

/* Appends (key, value), taking ownership of both; false when out of memory (both freed). */
static bool append(JsonObject *o, char *key, char *value) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        JsonPair *np = realloc(o->items, sizeof *np * (size_t)cap);
        if (!np) { free(key), free(value); return false; }
        o->items = np, o->cap = cap;
    }
    o->items[o->n++] = (JsonPair){key, value};
    return true;
}

static bool parse_member(JsonReader *j, const char *key, void *ctx) {
    JsonObject *o = ctx;
    char *value = NULL;
    if (!json_peek(j, '"')) return json_fail(j, "metadata values must be strings");
    if (!json_string(j, &value)) return false;
    if (find(o, key)) {
        free(value);
        return json_fail(j, "duplicate key");
    }
    char *k = strdup(key);
    if (!k) { free(value); return json_fail(j, "out of memory"); }
    return append(o, k, value) || json_fail(j, "out of memory");
}

int json_object_parse(JsonObject *o, const char *text, size_t len) {
    JsonReader j;
    json_reader_init(&j, text, len);
    if (!json_object(&j, parse_member, o) || !json_at_end(&j)) {
        if (!j.err) json_fail(&j, "trailing characters after the object");
        t_set_errmsg("byte %zu: %s", json_offset(&j), j.err);
        json_object_free(o);
        return -1;
    }
    return 0;
}

int json_object_set(JsonObject *o, const char *key, const char *value) {
    if (!json_utf8_valid(key, strlen(key)) || !json_utf8_valid(value, strlen(value))) {
        t_set_errmsg("metadata '%s' is not valid UTF-8", key);
        return -1;
    }
    char *v = strdup(value);
    if (!v) { t_set_errmsg("out of memory"); return -1; }
    JsonPair *p = find(o, key);
    if (p) {
        free(p->value);
        p->value = v;
        return 0;
    }
    char *k = strdup(key);
    if (!k || !append(o, k, v)) {
        if (!k) free(v);
        t_set_errmsg("out of memory");
        return -1;
    }
    return 0;
}

int json_object_set_int(JsonObject *o, const char *key, int64_t value) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return json_object_set(o, key, buf);
}

int json_object_get_int(const JsonObject *o, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    const char *s = json_object_get(o, key);
    if (!s) {
        t_set_errmsg("'%s' is missing", key);
        return -1;
    }
    const char *p = s + (*s == '-');
    char *end;
    errno = 0;
    long long x = (*p >= '0' && *p <= '9') ? strtoll(s, &end, 10) : 0;
    if (!(*p >= '0' && *p <= '9') || *end || errno == ERANGE) {
        t_set_errmsg("'%s' = '%.40s' is not an integer", key, s);
        return -1;
    }
    if (x < lo || x > hi) {
        t_set_errmsg("'%s' = %lld is outside %lld..%lld", key, x, (long long)lo, (long long)hi);
        return -1;
    }
    *v = x;
    return 0;
}

char *json_object_write(const JsonObject *o) {
    JsonBuf b = {0};
    json_buf_str(&b, "{");
    for (int i = 0; i < o->n; i++) {
        if (i) json_buf_str(&b, ",");
        json_buf_string(&b, o->items[i].key);
        json_buf_str(&b, ":");
        json_buf_string(&b, o->items[i].value);
    }
    json_buf_str(&b, "}");
    if (b.oom) {
        free(b.p);
        t_set_errmsg("out of memory");
        return NULL;
    }
    return b.p;
}
