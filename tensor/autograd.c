/* The define-by-run tape: nodes in creation order (a topological order), walked in reverse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"

typedef struct {
    TNode *node;
    size_t arena_pos;   /* arena offset when recorded, so t_arena_release can drop later nodes */
} TapeEntry;

static TapeEntry *tape;
static size_t tape_len, tape_cap;
/* Nodes that lead to the current backward root: an open-addressing set of node pointers, reused. */
static TNode **live;
static size_t live_cap;
static bool grad_on = true;
static bool tape_failed;   /* a node or gradient buffer could not be had since the last clear */

bool t_grad_enabled(void) { return grad_on; }

bool t_set_grad_enabled(bool on) {
    bool prev = grad_on;
    grad_on = on;
    return prev;
}

size_t t_tape_len(void) { return tape_len; }

void t_tape_clear(void) {
    tape_len = 0;
    tape_failed = false;
}

void t_tape_truncate_to(size_t mark) {
    while (tape_len > 0 && tape[tape_len - 1].arena_pos >= mark) tape_len--;
}

void t_tape_free(void) {
    free(tape);
    free(live);
    live = NULL;
    live_cap = 0;
    tape = NULL;
    tape_len = tape_cap = 0;
}

TNode *t_record(const char *op, Tensor *out, TBackwardFn backward, int n_in, Tensor *const *in) {
    if (!grad_on || !out) return NULL;
    bool any = false;
    for (int i = 0; i < n_in; i++) any |= t_needs_grad(in[i]);
    if (!any) return NULL;
    size_t pos = t_arena_mark();
    TNode *n = t_arena_calloc(sizeof *n);
    Tensor **ins = n ? t_arena_alloc(sizeof(Tensor *) * (size_t)(n_in > 0 ? n_in : 1)) : NULL;
    if (!ins) return NULL;   /* out of memory: the arena has reported it (t_arena_failed) */
    n->op = op;
    n->backward = backward;
    n->out = out;
    n->n_in = n_in;
    n->in = ins;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    out->node = n;
    out->requires_grad = true;
    if (tape_len == tape_cap) {
        size_t cap = tape_cap ? tape_cap * 2 : 4096;
        TapeEntry *t = realloc(tape, cap * sizeof *t);
        if (!t) {   /* the output stays unrecorded: its backward is impossible, so t_backward refuses */
            out->node = NULL;
            tape_failed = true;
            t_error("autograd", "out of memory growing the tape to %zu nodes", cap);
            return NULL;
        }
        tape = t;
        tape_cap = cap;
    }
    tape[tape_len].node = n;
    tape[tape_len].arena_pos = pos;
    tape_len++;
    return n;
}

/* Tensors marked by t_zero_grad_lazy: exactly those with grad_stale set (every place that clears the
 * mark also takes the tensor off this list, so a freed tensor is never left on it). */
static Tensor **stale;
static size_t n_stale, cap_stale;

void t_zero_grad_lazy(Tensor *t) {
    /* no buffer yet: it will be allocated zeroed; a tensor that needs no gradient gets none */
    if (!t || !t->grad || t->grad_stale || !t->requires_grad) return;
    if (n_stale == cap_stale) {
        size_t cap = cap_stale ? 2 * cap_stale : 256;
        Tensor **p = realloc(stale, cap * sizeof *p);
        if (!p) { /* no room to remember it: clear it now */
            t_zero_grad(t);
            return;
        }
        stale = p;
        cap_stale = cap;
    }
    stale[n_stale++] = t;
    t->grad_stale = true;
}

void t_grad_forget(Tensor *t) {
    if (!t->grad_stale) return;
    for (size_t i = n_stale; i-- > 0;)   /* from the end: clear_stale empties the list from there */
        if (stale[i] == t) {
            stale[i] = stale[--n_stale];
            break;
        }
    t->grad_stale = false;
}

void t_drop_grad(Tensor *t) {
    if (!t || !t->persistent || !t->grad) return;
    t_grad_forget(t);
    free(t->grad);
    t->grad = NULL;
}

/* Clears every gradient still marked stale (end of a backward). */
static void clear_stale(void) {
    while (n_stale > 0) t_zero_grad(stale[n_stale - 1]);   /* t_zero_grad takes it off the list */
}

float *t_grad_buf_overwrite(Tensor *t, bool *overwrite) {
    *overwrite = !t->grad || t->grad_stale;
    t_grad_forget(t);   /* unmarked, t_grad_buf neither clears it nor adds work */
    return t_grad_buf(t);
}

float *t_grad_buf(Tensor *t) {
    if (t->grad && t->grad_stale) t_zero_grad(t);
    if (!t->grad) {
        size_t bytes = (size_t)t_numel(t) * sizeof(float);
        if (t->persistent) {
            t->grad = calloc(1, bytes ? bytes : sizeof(float));
            if (!t->grad) {
                tape_failed = true;
                t_error("autograd", "out of memory for a gradient of %zu bytes", bytes);
                return NULL;
            }
        } else {
            t->grad = t_arena_calloc(bytes);
        }
    }
    return t->grad;
}

void t_grad_add(Tensor *t, const float *src, int64_t n) {
    float *g = t_grad_buf(t);
    if (!g) return;   /* out of memory: the arena has reported it */
#pragma omp parallel for simd if (n > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] += src[i];
}

void t_requires_grad(Tensor *t) {
    if (t) t->requires_grad = true;
}

static size_t live_slot(const TNode *n) {
    size_t h = (size_t)(((uintptr_t)n >> 6) * 0x9E3779B97F4A7C15ull);
    return h & (live_cap - 1);
}

static void live_add(TNode *n) {
    size_t i = live_slot(n);
    while (live[i] && live[i] != n) i = (i + 1) & (live_cap - 1);
    live[i] = n;
}

static bool live_has(const TNode *n) {
    for (size_t i = live_slot(n); live[i]; i = (i + 1) & (live_cap - 1))
        if (live[i] == n) return true;
    return false;
}

/* Runs exactly the nodes that lead to root and whose output holds a gradient: root's node, then, walking
 * the tape backwards, the nodes of the inputs of every node that runs. Graph edges are only ever recorded
 * inputs (an op with several outputs gives each of them its node, tensor/tensor.h), so nothing else can
 * lead to root. A node that ran in an earlier backward of the same step and does not lead to this root is
 * left alone: replaying it would add its gradients into shared inputs (parameters) again. */
static int run_backward(Tensor *root) {
    size_t need = 16;
    while (need < 2 * tape_len + 2) need *= 2;
    if (need > live_cap) {
        free(live);
        live = malloc(need * sizeof *live);
        if (!live) {
            live_cap = 0;
            t_error("autograd", "out of memory for the backward pass (%zu nodes)", tape_len);
            return -1;
        }
        live_cap = need;
    }
    memset(live, 0, live_cap * sizeof *live);
    if (root->node) live_add(root->node);
    for (size_t i = tape_len; i-- > 0;) {
        TNode *n = tape[i].node;
        if (!n->out->grad || !live_has(n)) continue;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] && n->in[j]->node) live_add(n->in[j]->node);
        n->backward(n);
        if (t_arena_failed() || tape_failed) break;   /* this node's scratch could not be had (reported) */
    }
    clear_stale();
    return t_arena_failed() || tape_failed ? -1 : 0;
}

/* Whether this step's graph is whole: after out of memory in the forward, saved state or nodes may be
 * missing, and the backward must not run. */
static bool graph_failed(void) {
    if (!t_arena_failed() && !tape_failed) return false;
    char why[900];
    snprintf(why, sizeof why, "%s", t_errmsg());
    t_set_errmsg("autograd: no backward: this step ran out of memory (%s)", why);
    return true;
}

/* The root's gradient buffer, for overwriting: no zero fill when it is new. */
static float *root_grad(Tensor *root) {
    if (!root->grad && !root->persistent)
        root->grad = t_arena_alloc(sizeof(float) * (size_t)(t_numel(root) > 0 ? t_numel(root) : 1));
    return t_grad_buf(root);
}

int t_backward(Tensor *root) { return t_backward_with(root, NULL); }

int t_backward_with(Tensor *root, const float *seed) {
    if (!root || graph_failed()) return -1;
    float *g = root_grad(root);
    if (!g) return -1;
    int64_t n = t_numel(root);
#pragma omp parallel for simd if (n > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = seed ? seed[i] : 1.0f;
    return run_backward(root);
}
