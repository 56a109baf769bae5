#ifndef DACLIP_CLIP_TOKENIZER_H
#define DACLIP_CLIP_TOKENIZER_H
/* The CLIP byte-level BPE tokenizer, identical to open_clip's SimpleTokenizer
 * (daclip-uir da-clip/src/open_clip/tokenizer.py; reference §7). Depends on libc + zlib only.
 *
 * Text pipeline (tokenizer_encode):
 *   html-unescape twice (Python html.unescape rules) -> strip -> collapse whitespace runs -> strip
 *   -> lower-case (Python str.lower, incl. final sigma) -> split with CLIP's pattern
 *   -> byte-level BPE per piece (lowest-rank merge first) -> ids.
 * NOT reproduced: ftfy.fix_text, which the Python tokenizer runs first. It rewrites mojibake, curly
 * quotes (’ -> '), ligatures, full-width forms, and NFC-normalises; plain captions are unaffected.
 * Input must be UTF-8; each invalid byte is read as U+FFFD.
 *
 * A Tokenizer keeps a per-word cache, so one Tokenizer must not be used by two threads at once. */
#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_CONTEXT 77       /* CLIP's context length */
#define CLIP_OFFICIAL_MERGES 48894 /* 49152 - 256 - 2: merges used from bpe_simple_vocab_16e6 */

typedef struct Tokenizer Tokenizer;

/* Loads a merges file (gzip or plain): a header line containing "#version", then "a b" lines.
 * The header may say "merges=N"; otherwise the official count 48894 is used. Vocabulary:
 * 256 byte symbols, the same with </w>, one per merge, then <start_of_text>, <end_of_text>.
 * Returns NULL and writes a message naming the file into err on any problem. */
Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
void tokenizer_free(Tokenizer *tok);

int tokenizer_vocab_size(const Tokenizer *tok); /* 512 + merges + 2 (49408 for the official file) */
int tokenizer_n_merges(const Tokenizer *tok);
int32_t tokenizer_sot(const Tokenizer *tok);    /* <start_of_text>, 49406 officially */
int32_t tokenizer_eot(const Tokenizer *tok);    /* <end_of_text>, 49407 officially */

/* BPE ids of text, without start/end tokens. Writes at most max ids; returns the total count
 * (which may exceed max: then only the first max are stored). -1 only when out of memory. */
int tokenizer_encode(Tokenizer *tok, const char *text, int32_t *ids, int max);

/* [sot] + encode(text) + [eot], zero-padded to context_len; a longer sequence keeps its first
 * context_len ids and ends with eot. Returns the unpadded length (<= context_len), -1 on OOM. */
int tokenizer_tokenize_n(Tokenizer *tok, const char *text, int32_t *out, int context_len);
/* The same with context length 77. */
int tokenizer_tokenize(Tokenizer *tok, const char *text, int32_t out[TOKENIZER_CONTEXT]);

/* Text of ids (</w> becomes a space, invalid UTF-8 becomes U+FFFD), NUL-terminated, snprintf-style:
 * returns the full length; ids outside the vocabulary are skipped. */
size_t tokenizer_decode(const Tokenizer *tok, const int32_t *ids, int n, char *out, size_t outlen);

/* The symbol string of one id in its byte-encoded form (e.g. "photo</w>"), or NULL. */
const char *tokenizer_id_string(const Tokenizer *tok, int32_t id);

/* ---- text pipeline pieces, shared with clip/bpe_train.c and the tests ---------------------- */

/* UTF-8 -> code points; each invalid byte becomes U+FFFD. Returns the count; out needs len slots. */
size_t utf8_decode(const char *s, size_t len, uint32_t *out);
/* Code point -> UTF-8 (1..4 bytes written). */
int utf8_encode(uint32_t cp, char out[4]);

/* Python html.unescape on code points, in place; returns the new length (never longer). */
size_t html_unescape(uint32_t *s, size_t n);
/* basic_clean (minus ftfy) + whitespace_clean + lower. Returns a malloc'd code point array
 * (*n_out code points) or NULL on OOM. */
uint32_t *clip_normalize(const char *text, size_t *n_out);
/* The next piece of CLIP's split pattern in s[*pos..n): sets [*start, *end) and advances *pos.
 * Returns 0 when no piece is left. */
int clip_next_piece(const uint32_t *s, size_t n, size_t *pos, size_t *start, size_t *end);
/* The byte-level symbol of a byte: index in bytes_to_unicode order (0..255). */
int clip_byte_symbol(uint8_t b);
/* The character bytes_to_unicode maps byte b to (as a code point), and the inverse (-1 if none). */
uint32_t clip_byte_char(uint8_t b);
int clip_char_byte(uint32_t cp);
/* The text of base symbol id 0..511 (id >= 256: with "</w>"), NUL-terminated; returns its length. */
int clip_base_symbol_text(int id, char out[9]);
/* FNV-1a, the hash of the string tables. */
uint64_t clip_hash_bytes(const char *p, size_t n);

/* ---- generated tables: clip/unicode_classes.c, clip/html_entities.c ------------------------ */
enum {
    UC_LETTER = 1,          /* \p{L} */
    UC_NUMBER = 2,          /* \p{N} */
    UC_SPACE_RE = 4,        /* the regex module's \s (White_Space) */
    UC_SPACE_PY = 8,        /* Python str.isspace (used by strip) */
    UC_CASED = 16,          /* Cased (final-sigma rule) */
    UC_CASE_IGNORABLE = 32, /* Case_Ignorable (final-sigma rule) */
    UC_PUNCT = 64           /* [^\s\p{L}\p{N}] under IGNORECASE */
};
#define UNICODE_LOWER_MAX 3
unsigned unicode_class(uint32_t cp);
int unicode_lower(uint32_t cp, uint32_t out[UNICODE_LOWER_MAX]); /* returns 1..UNICODE_LOWER_MAX */
/* UTF-8 replacement text of a named reference ("amp;", "lt", ...) or NULL. */
const char *html_entity_lookup(const char *name, size_t len);
/* Replacement code point of &#num; per HTML5, or -1 when the reference is dropped. */
int64_t html_numeric_ref(uint64_t num);

#endif
