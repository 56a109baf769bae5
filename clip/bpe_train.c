/* Byte-level BPE training (see clip/bpe_train.h). Classic incremental algorithm: distinct pieces with
 * their counts, a pair -> (count, words containing it) table, and a max-heap with lazy deletion
 * (every count change pushes a new entry; entries whose count is out of date are dropped on pop). */
#include "clip/bpe_train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "clip/tokenizer.h"

typedef struct { int32_t *sym; int n; int64_t count; int64_t stamp; } Word;

typedef struct {
    uint64_t key; /* (a+1) << 32 | (b+1); 0 = empty slot */
    int64_t count;
    int32_t *words; /* words that contain (or once contained) the pair; may repeat */
    int n_words, cap_words;
} Pair;

typedef struct { int64_t count; int32_t a, b; } HeapEntry;

struct BpeTrainer {
    /* distinct pieces: open-addressing table of word indices keyed by the piece's UTF-8 bytes */
    Word *words;
    char **word_text;
    int32_t n_words, cap_words;
    int32_t *word_table;
    size_t word_table_cap;
    int64_t n_pieces;
    /* symbols: 0..511 are the byte symbols (without / with </w>), then one per new string */
    char **sym_text;
    int32_t n_syms, cap_syms;
    int32_t *sym_table; /* string -> symbol id */
    size_t sym_table_cap;
    Pair *pairs;
    size_t pair_cap, pair_used;
    HeapEntry *heap;
    size_t heap_n, heap_cap;
    int32_t (*merges)[2];
    int n_merges;
};

static uint64_t mix(uint64_t x) {
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Grows an array to hold at least need elements; returns 0 or -1 (array unchanged). */
static int grow(void **arr, int32_t *cap, int32_t need, size_t elem) {
    if (need <= *cap) return 0;
    int32_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* ---- string tables (open addressing over ids; the strings live in a side array) ------------ */

static int32_t *table_slot(int32_t *table, size_t cap, char **text, const char *s, size_t len) {
    size_t mask = cap - 1;
    for (size_t h = clip_hash_bytes(s, len) & mask;; h = (h + 1) & mask) {
        int32_t id = table[h];
        if (id < 0 || (strlen(text[id]) == len && !memcmp(text[id], s, len))) return &table[h];
    }
}

/* Makes room for one more entry beside the n present, rebuilding at twice the size when half full. */
static int table_reserve(int32_t **table, size_t *cap, char **text, int32_t n) {
    if ((size_t)(n + 1) * 2 < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 1024;
    int32_t *t = malloc(nc * sizeof *t);
    if (!t) return -1;
    memset(t, 0xff, nc * sizeof *t);
    for (int32_t i = 0; i < n; i++) *table_slot(t, nc, text, text[i], strlen(text[i])) = i;
    free(*table);
    *table = t;
    *cap = nc;
    return 0;
}

static int32_t add_symbol(BpeTrainer *bt, char *text) {
    if (table_reserve(&bt->sym_table, &bt->sym_table_cap, bt->sym_text, bt->n_syms) ||
        grow((void **)&bt->sym_text, &bt->cap_syms, bt->n_syms + 1, sizeof *bt->sym_text)) {
        free(text);
        return -1;
    }
    int32_t *slot = table_slot(bt->sym_table, bt->sym_table_cap, bt->sym_text, text, strlen(text));
    if (*slot >= 0) { free(text); return *slot; } /* same string from another split: same symbol */
    bt->sym_text[bt->n_syms] = text;
    *slot = bt->n_syms;
    return bt->n_syms++;
}

BpeTrainer *bpe_trainer_new(void) {
    BpeTrainer *bt = calloc(1, sizeof *bt);
    if (!bt) return NULL;
    for (int k = 0; k < 512; k++) {
        char *s = malloc(9);
        if (!s) { bpe_trainer_free(bt); return NULL; }
        clip_base_symbol_text(k, s);
        if (add_symbol(bt, s) != k) { bpe_trainer_free(bt); return NULL; }
    }
    return bt;
}

void bpe_trainer_free(BpeTrainer *bt) {
    if (!bt) return;
    for (int32_t i = 0; i < bt->n_words; i++) { free(bt->words[i].sym); free(bt->word_text[i]); }
    for (int32_t i = 0; i < bt->n_syms; i++) free(bt->sym_text[i]);
    for (size_t i = 0; i < bt->pair_cap; i++) free(bt->pairs[i].words);
    free(bt->words);
    free(bt->word_text);
    free(bt->word_table);
    free(bt->sym_text);
    free(bt->sym_table);
    free(bt->pairs);
    free(bt->heap);
    free(bt->merges);
    free(bt);
}

int64_t bpe_trainer_n_pieces(const BpeTrainer *bt) { return bt->n_pieces; }
int64_t bpe_trainer_n_unique(const BpeTrainer *bt) { return bt->n_words; }

/* ---- counting pieces ----------------------------------------------------------------------- */

static int add_piece(BpeTrainer *bt, const char *p, size_t len) {
    bt->n_pieces++;
    if (table_reserve(&bt->word_table, &bt->word_table_cap, bt->word_text, bt->n_words)) return -1;
    int32_t *slot = table_slot(bt->word_table, bt->word_table_cap, bt->word_text, p, len);
    if (*slot >= 0) { bt->words[*slot].count++; return 0; }
    if (grow((void **)&bt->words, &bt->cap_words, bt->n_words + 1, sizeof *bt->words)) return -1;
    int32_t cap = bt->cap_words; /* word_text grows alongside words */
    void *wt = realloc(bt->word_text, (size_t)cap * sizeof *bt->word_text);
    if (!wt) return -1;
    bt->word_text = wt;
    char *text = malloc(len + 1);
    int32_t *sym = malloc(len * sizeof *sym);
    if (!text || !sym) { free(text); free(sym); return -1; }
    memcpy(text, p, len);
    text[len] = 0;
    for (size_t i = 0; i < len; i++) sym[i] = clip_byte_symbol((uint8_t)p[i]) + (i + 1 == len ? 256 : 0);
    bt->word_text[bt->n_words] = text;
    bt->words[bt->n_words] = (Word){sym, (int)len, 1, -1};
    *slot = bt->n_words++;
    return 0;
}

int bpe_trainer_add_text(BpeTrainer *bt, const char *text) {
    size_t n;
    uint32_t *s = clip_normalize(text, &n);
    char *buf = s ? malloc(n * 4 + 1) : NULL;
    int rc = buf ? 0 : -1;
    size_t pos = 0, a, b;
    while (rc == 0 && clip_next_piece(s, n, &pos, &a, &b)) {
        size_t len = 0;
        for (size_t i = a; i < b; i++) len += (size_t)utf8_encode(s[i], buf + len);
        if ((len == 15 && !memcmp(buf, "<start_of_text>", 15)) || (len == 13 && !memcmp(buf, "<end_of_text>", 13)))
            continue; /* special tokens are never merged */
        rc = add_piece(bt, buf, len);
    }
    free(buf);
    free(s);
    return rc;
}

/* ---- pair table and heap ------------------------------------------------------------------- */

static uint64_t key_of(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static Pair *pair_find(Pair *pairs, size_t cap, uint64_t key) {
    size_t mask = cap - 1;
    for (size_t h = mix(key) & mask;; h = (h + 1) & mask)
        if (pairs[h].key == key || pairs[h].key == 0) return &pairs[h];
}

static Pair *pair_get(BpeTrainer *bt, int32_t a, int32_t b) {
    if (bt->pair_used * 2 >= bt->pair_cap) {
        size_t nc = bt->pair_cap ? bt->pair_cap * 2 : 4096;
        Pair *np = calloc(nc, sizeof *np);
        if (!np) return NULL;
        for (size_t i = 0; i < bt->pair_cap; i++)
            if (bt->pairs[i].key) *pair_find(np, nc, bt->pairs[i].key) = bt->pairs[i];
        free(bt->pairs);
        bt->pairs = np;
        bt->pair_cap = nc;
    }
    Pair *p = pair_find(bt->pairs, bt->pair_cap, key_of(a, b));
    if (!p->key) { p->key = key_of(a, b); bt->pair_used++; }
    return p;
}

static int heap_before(const HeapEntry *x, const HeapEntry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static int heap_push(BpeTrainer *bt, int64_t count, int32_t a, int32_t b) {
    if (count < 2) return 0; /* never merged: see bpe_trainer_learn */
    if (bt->heap_n == bt->heap_cap) {
        size_t nc = bt->heap_cap ? bt->heap_cap * 2 : 4096;
        HeapEntry *nh = realloc(bt->heap, nc * sizeof *nh);
        if (!nh) return -1;
        bt->heap = nh;
        bt->heap_cap = nc;
    }
    size_t i = bt->heap_n++;
    HeapEntry e = {count, a, b};
    while (i > 0 && heap_before(&e, &bt->heap[(i - 1) / 2])) { bt->heap[i] = bt->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    bt->heap[i] = e;
    return 0;
}

static HeapEntry heap_pop(BpeTrainer *bt) {
    HeapEntry top = bt->heap[0], last = bt->heap[--bt->heap_n];
    size_t i = 0, n = bt->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&bt->heap[c + 1], &bt->heap[c])) c++;
        if (!heap_before(&bt->heap[c], &last)) break;
        bt->heap[i] = bt->heap[c];
        i = c;
    }
    if (n) bt->heap[i] = last;
    return top;
}

/* Adds delta to the count of every adjacent pair of word w and records w in the word list of each
 * pair: all pairs when list_sym is LIST_ALL, those involving symbol list_sym (the pairs a merge just
 * created) when it is a symbol id, none when it is LIST_NONE. */
enum { LIST_ALL = -1, LIST_NONE = -2 };
static int count_pairs(BpeTrainer *bt, int32_t w, int64_t delta, int32_t list_sym) {
    const Word *wd = &bt->words[w];
    for (int i = 0; i + 1 < wd->n; i++) {
        int32_t a = wd->sym[i], b = wd->sym[i + 1];
        Pair *p = pair_get(bt, a, b);
        if (!p) return -1;
        p->count += delta;
        if (list_sym == LIST_ALL || a == list_sym || b == list_sym) {
            if (grow((void **)&p->words, &p->cap_words, p->n_words + 1, sizeof *p->words)) return -1;
            p->words[p->n_words++] = w;
        }
        if (heap_push(bt, p->count, a, b)) return -1;
    }
    return 0;
}

/* ---- learning ------------------------------------------------------------------------------ */

static int merge_word(Word *wd, int32_t a, int32_t b, int32_t c) {
    int w = 0, changed = 0;
    for (int i = 0; i < wd->n;) {
        if (i + 1 < wd->n && wd->sym[i] == a && wd->sym[i + 1] == b) { wd->sym[w++] = c; i += 2; changed = 1; }
        else wd->sym[w++] = wd->sym[i++];
    }
    wd->n = w;
    return changed;
}

static int contains_pair(const Word *wd, int32_t a, int32_t b) {
    for (int i = 0; i + 1 < wd->n; i++)
        if (wd->sym[i] == a && wd->sym[i + 1] == b) return 1;
    return 0;
}

int bpe_trainer_learn(BpeTrainer *bt, int n_merges, void (*progress)(void *, int, int), void *ctx) {
    free(bt->merges);
    bt->merges = malloc((size_t)(n_merges > 0 ? n_merges : 1) * sizeof *bt->merges);
    bt->n_merges = 0;
    if (!bt->merges) return -1;
    if (bt->pair_used == 0) /* first call: count every pair once */
        for (int32_t w = 0; w < bt->n_words; w++)
            if (count_pairs(bt, w, bt->words[w].count, LIST_ALL)) return -1;
    while (bt->n_merges < n_merges && bt->heap_n) {
        HeapEntry top = heap_pop(bt);
        Pair *p = pair_get(bt, top.a, top.b);
        if (!p) return -1;
        if (p->count != top.count) continue; /* stale entry */
        size_t la = strlen(bt->sym_text[top.a]), lb = strlen(bt->sym_text[top.b]);
        char *joined = malloc(la + lb + 1);
        if (!joined) return -1;
        memcpy(joined, bt->sym_text[top.a], la);
        memcpy(joined + la, bt->sym_text[top.b], lb + 1);
        int32_t c = add_symbol(bt, joined);
        if (c < 0) return -1;
        int stamp = bt->n_merges;
        bt->merges[bt->n_merges][0] = top.a;
        bt->merges[bt->n_merges][1] = top.b;
        bt->n_merges++;
        /* the word list may grow while we walk it (new pairs (c, c) land in it), so walk a snapshot */
        int n_list = p->n_words;
        int32_t *list = malloc((size_t)(n_list ? n_list : 1) * sizeof *list);
        if (!list) return -1;
        memcpy(list, p->words, (size_t)n_list * sizeof *list);
        for (int i = 0; i < n_list; i++) {
            Word *wd = &bt->words[list[i]];
            if (wd->stamp == stamp || !contains_pair(wd, top.a, top.b)) continue;
            wd->stamp = stamp;
            if (count_pairs(bt, list[i], -wd->count, LIST_NONE) || !merge_word(wd, top.a, top.b, c) ||
                count_pairs(bt, list[i], wd->count, c)) {
                free(list);
                return -1;
            }
        }
        free(list);
        p = pair_get(bt, top.a, top.b); /* the table may have moved */
        if (!p) return -1;
        p->n_words = 0; /* the pair is gone from every word */
        if (progress) progress(ctx, bt->n_merges, n_merges);
    }
    return bt->n_merges;
}

int bpe_trainer_save(const BpeTrainer *bt, const char *path, char *err, size_t errlen) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) { snprintf(err, errlen, "%s: out of memory", path); return -1; }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    errno = 0;
    gzFile f = gzopen(tmp, "wb9");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, errno ? strerror(errno) : "zlib failure");
        free(tmp);
        return -1;
    }
    int ok = gzprintf(f, "#version: 0.2 daclip-bpe merges=%d\n", bt->n_merges) > 0;
    for (int i = 0; ok && i < bt->n_merges; i++)
        ok = gzprintf(f, "%s %s\n", bt->sym_text[bt->merges[i][0]], bt->sym_text[bt->merges[i][1]]) > 0;
    if (gzclose(f) != Z_OK) ok = 0;
    if (ok && rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    if (!ok) {
        snprintf(err, errlen, "%s: write failed (disk full?)", tmp);
        remove(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}
