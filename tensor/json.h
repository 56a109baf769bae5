#ifndef DACLIP_TENSOR_JSON_H
#define DACLIP_TENSOR_JSON_H
/* JSON for model files, at two levels.
 *
 * JsonReader: a strict streaming reader (RFC 8259 grammar, UTF-8 checked, strings unescaped, nesting
 * limited) that the safetensors header parser drives member by member.
 *
 * JsonObject: a flat object whose values are all strings, which is what a safetensors "__metadata__"
 * holds (numbers are stored as text: {"step":"100","ch_mult":"[1, 2, 4]"}). Parse it from any valid
 * spelling (spaces, newlines, escapes, key order), query it, set values and write it back escaped.
 * Model configurations are read and written only through this, never by searching the text.
 *
 * Errors: functions that return -1 (or NULL) leave a message in t_errmsg() without a file name ("byte 12:
 * expected ':'", "'width' = 'abc' is not an integer"); callers prefix the file they were reading. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ streaming reader */

typedef struct {
    const char *start, *s, *end;
    const char *err;       /* first problem found (static string), NULL while all is well */
} JsonReader;

void json_reader_init(JsonReader *j, const char *text, size_t len);
/* Byte offset of the reader (where a problem was found). */
size_t json_offset(const JsonReader *j);
/* Records `why` (the first one wins) and returns false. */
bool json_fail(JsonReader *j, const char *why);
/* Skips white space and tells whether the next character is c (not consumed). */
bool json_peek(JsonReader *j, char c);
/* Consumes c after white space, or fails with `why`. */
bool json_expect(JsonReader *j, char c, const char *why);
/* A string; *out (when out != NULL) gets a malloc'd, NUL-terminated UTF-8 copy. Embedded NULs, lone
 * surrogates, control characters and invalid UTF-8 are errors. */
bool json_string(JsonReader *j, char **out);
/* A non-negative integer that fits in int64 (shapes, offsets). */
bool json_uint(JsonReader *j, int64_t *v);
/* Any value (validated, discarded). */
bool json_skip(JsonReader *j);
/* Calls fn(j, key, ctx) with j at each member's value; fn must consume the value. */
typedef bool (*JsonMemberFn)(JsonReader *j, const char *key, void *ctx);
bool json_object(JsonReader *j, JsonMemberFn fn, void *ctx);
/* True when only white space is left. */
bool json_at_end(JsonReader *j);

/* ------------------------------------------------------------------ growing text buffer */

typedef struct {
    char *p;               /* NUL-terminated, malloc'd */
    size_t n, cap;
    bool oom;              /* a put failed: the text is incomplete */
} JsonBuf;

void json_buf_put(JsonBuf *b, const char *s, size_t n);
void json_buf_str(JsonBuf *b, const char *s);
/* s as a quoted JSON string ('"', '\\' and control characters escaped). */
void json_buf_string(JsonBuf *b, const char *s);

/* ------------------------------------------------------------------ flat objects of strings */

typedef struct {
    char *key, *value;
} JsonPair;

typedef struct {
    int n, cap;
    JsonPair *items;       /* in file (or insertion) order */
} JsonObject;

/* Parses text[0..len) (a JSON object whose values are all strings; duplicate keys refused) into o, which
 * must be zeroed or freed. 0, or -1 with t_errmsg() "byte N: problem". */
int json_object_parse(JsonObject *o, const char *text, size_t len);
void json_object_free(JsonObject *o);
/* The value of key, NULL when absent. */
const char *json_object_get(const JsonObject *o, const char *key);
/* Sets key to a copy of value (replacing an earlier value in place). -1 when out of memory or when key or
 * value is not valid UTF-8. */
int json_object_set(JsonObject *o, const char *key, const char *value);
int json_object_set_int(JsonObject *o, const char *key, int64_t value);
/* The value of key read as a whole decimal integer in [lo, hi]. -1 with t_errmsg() naming the key when
 * absent, not an integer (spaces, "1e3", "12abc", "") or out of range. */
int json_object_get_int(const JsonObject *o, const char *key, int64_t lo, int64_t hi, int64_t *v);
/* The object as compact JSON text, malloc'd (free() it); NULL when out of memory. */
char *json_object_write(const JsonObject *o);

/* Whether s is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool json_utf8_valid(const char *s, size_t n);

#endif
