/* The activation arena: a bump allocator over a list of blocks. While a program is still discovering
 * how much a step needs, it grows by adding blocks; at the next reset the blocks are replaced by one
 * block as large as the high-water mark, so steady-state steps never call malloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"

#define ARENA_ALIGN 64
#define ARENA_MIN_BLOCK ((size_t)64 << 20)
#define ARENA_MAX_BLOCKS 64

typedef struct {
    char *base;
    size_t size, used;
} Block;

static Block blocks[ARENA_MAX_BLOCKS];
static int n_blocks, cur;          /* blocks in use: 0..cur */
static size_t high_water;
static bool failed;                /* an allocation failed since the last reset */

static size_t used_total(void) {
    size_t s = 0;
    for (int i = 0; i < cur && i < n_blocks; i++) s += blocks[i].size;   /* earlier blocks count whole */
    if (cur < n_blocks) s += blocks[cur].used;
    return s;
}

static size_t limit;               /* 0: none; else the most the arena may hold (t_arena_set_limit) */

void t_arena_set_limit(size_t bytes) { limit = bytes; }

static int add_block(size_t min_size) {
    if (n_blocks == ARENA_MAX_BLOCKS) return -1;
    size_t sz = ARENA_MIN_BLOCK;
    if (n_blocks > 0 && blocks[n_blocks - 1].size * 2 > sz) sz = blocks[n_blocks - 1].size * 2;
    if (sz < min_size) sz = min_size;
    if (limit) {
        size_t have = t_arena_capacity();
        if (have >= limit || limit - have < min_size) return -1;
        if (sz > limit - have) sz = limit - have;
    }
    char *p = aligned_alloc(ARENA_ALIGN, (sz + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!p) return -1;
    t_advise_huge_pages(p, sz);   /* activations stream through the GEMM like weights do */
    blocks[n_blocks].base = p;
    blocks[n_blocks].size = sz;
    blocks[n_blocks].used = 0;
    n_blocks++;
    return 0;
}

void *t_arena_alloc(size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    while (cur < n_blocks && blocks[cur].size - blocks[cur].used < need) {
        /* the tail of this block is wasted; account it as used so marks stay monotonic */
        blocks[cur].used = blocks[cur].size;
        cur++;
    }
    if (cur == n_blocks && add_block(need) != 0) {
        failed = true;
        t_error("arena", "out of memory: the activation arena cannot grow by %zu bytes (%zu in use)", bytes,
                used_total());
        return NULL;
    }
    char *p = blocks[cur].base + blocks[cur].used;
    blocks[cur].used += need;
    size_t u = used_total();
    if (u > high_water) high_water = u;
    return p;
}

void *t_arena_calloc(size_t bytes) {
    void *p = t_arena_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

size_t t_arena_mark(void) { return used_total(); }

void t_arena_release(size_t mark) {
    t_tape_truncate_to(mark);
    size_t base = 0;
    for (int i = 0; i < n_blocks; i++) {
        if (mark <= base + blocks[i].size) {
            blocks[i].used = mark > base ? mark - base : 0;
            for (int j = i + 1; j < n_blocks; j++) blocks[j].used = 0;
            cur = i;
            return;
        }
        base += blocks[i].size;
    }
}

void *t_arena_release_keep(size_t mark, const void *src, size_t bytes) {
    t_arena_release(mark);
    void *d = t_arena_alloc(bytes);   /* at or below src: nothing has been written over the freed suffix yet */
    if (d && d != src) memmove(d, src, bytes);
    return d;
}

bool t_arena_failed(void) { return failed; }

void t_arena_reset(void) {
    t_tape_clear();
    failed = false;
    if (n_blocks > 1) {
        /* coalesce: one block as large as the most any step has needed (the old blocks stay when it
         * cannot be had: they hold as much) */
        size_t want = high_water + high_water / 16;
        if (limit && want > limit) want = limit > high_water ? limit : high_water;
        char *p = aligned_alloc(ARENA_ALIGN, (want + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
        if (p) {
            for (int i = 0; i < n_blocks; i++) free(blocks[i].base);
            t_advise_huge_pages(p, want);
            blocks[0] = (Block){.base = p, .size = want, .used = 0};
            n_blocks = 1;
        }
    }
    for (int i = 0; i < n_blocks; i++) blocks[i].used = 0;
    cur = 0;
}

size_t t_arena_used(void) { return used_total(); }
size_t t_arena_high_water(void) { return high_water; }
size_t t_arena_block_count(void) { return (size_t)n_blocks; }

size_t t_arena_capacity(void) {
    size_t s = 0;
    for (int i = 0; i < n_blocks; i++) s += blocks[i].size;
    return s;
}

void t_arena_shutdown(void) {
    t_tape_clear();
    for (int i = 0; i < n_blocks; i++) free(blocks[i].base);
    n_blocks = 0;
    cur = 0;
    high_water = 0;
    failed = false;
}
