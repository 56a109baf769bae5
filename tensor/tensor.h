#ifndef DACLIP_TENSOR_H
#define DACLIP_TENSOR_H
/* The tensor core: float32 N-d tensors (views with strides + offset), a define-by-run autograd tape,
 * and an activation arena that is reset once per training step.
 *
 * Memory rules
 *   - Parameters (t_param_new) own malloc'd data and grad; they live until t_free().
 *   - Everything an op creates (tensor headers, data, saved state, tape nodes, activation grads) comes
 *     from the global arena and dies at t_arena_reset(). After the first step the arena is one block sized
 *     to the high-water mark, so a steady-state training loop does no malloc per op.
 *   - t_arena_mark()/t_arena_release() free a suffix of the arena (e.g. per-sample work in inference).
 *   - Scratch inside an op's forward or backward is a suffix too: first allocate everything that outlives
 *     the call (forward: the output and what is saved for backward; backward: every gradient buffer it
 *     will write — t_grad_buf, t_grad_buf_overwrite, t_grad_add allocate them in the arena), then take
 *     t_arena_mark(), allocate the scratch and t_arena_release(mark) before returning. A buffer obtained
 *     after the mark would be freed by the release while a tensor still points at it. A backward that
 *     keeps scratch without a mark is safe but holds it until the step's reset.
 * Autograd rules
 *   - An op records a tape node iff grad mode is on and one of its inputs requires grad.
 *   - Tape order is creation order, which is a topological order: t_backward() walks it in reverse.
 *   - The graph's edges are the recorded inputs and nothing else: t_backward(root) runs exactly the nodes
 *     that lead to root through them and whose output holds a gradient. So a second backward in the same
 *     step does not replay the first one's nodes unless they lead to its root as well.
 *   - An op with several outputs records one node: every output's `node` points at it, and the outputs'
 *     gradients are blocks of the node's output gradient, allocated (zeroed) with the node
 *     (t_mha_in_proj's q, k and v: tensor/ops_fused.h).
 *   - Gradients are contiguous buffers in the tensor's logical shape; backward functions add (+=) into
 *     them, so fan-out sums for free. The exception is the first writer: a backward that covers every
 *     element of a gradient that does not exist yet (tensor/grad_write.h) or is only marked zero
 *     (t_zero_grad_lazy, t_grad_buf_overwrite) stores (=) instead. Views scatter their gradient into the
 *     parent's.
 *   - In no-grad mode nothing is recorded and nothing saved.
 * Errors (one convention for every library directory: tensor, nn, clip, controller, irsde)
 *   - Library code never exits. A failure returns NULL / -1 / false and leaves one message in a
 *     thread-local buffer, t_errmsg(): t_error(op, ...) writes "op: message" there and calls the error
 *     handler, t_set_errmsg writes it without the handler (file readers, whose callers decide).
 *   - The default handler only keeps the message, so the op returns NULL; every op given a NULL input
 *     returns NULL, and a failed chain is checked once at its end. The command-line front end installs a
 *     handler that prints the message and exits (train/daclip.c): the only place a program ends on an
 *     error. Parts of train/ that recover (a bad image in a folder) install a returning handler around it.
 *   - Out of memory is an error like the others: the arena, parameters and the tape report it through
 *     t_error and return NULL; ops return NULL, a backward that cannot get scratch stops and t_backward
 *     returns -1, a model init returns -1 (ParamSet.failed).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define T_MAX_DIMS 6

typedef struct Tensor Tensor;
typedef struct TNode TNode;

struct Tensor {
    float *data;                 /* element (0,...,0) of this view (= storage + offset) */
    int ndim;
    int64_t shape[T_MAX_DIMS];
    int64_t stride[T_MAX_DIMS];  /* in elements */
    int64_t offset;              /* of data from the start of its storage, in elements */
    float *grad;                 /* contiguous, logical shape; NULL until backward reaches it */
    bool requires_grad;
    bool persistent;             /* data/grad malloc'd (parameters), not arena memory */
    bool grad_stale;             /* grad's contents count as zero (t_zero_grad_lazy): cleared on first use */
    TNode *node;                 /* op that made it (NULL for leaves and in no-grad mode) */
    const char *name;            /* parameters: state-dict key (owned by the module tree) */
};

typedef void (*TBackwardFn)(TNode *n);

struct TNode {
    const char *op;              /* op name, for errors and debugging */
    TBackwardFn backward;        /* reads n->out->grad, adds into inputs' grads (a first writer stores) */
    Tensor *out;
    int n_in;
    Tensor **in;                 /* inputs (arena) */
    void *saved;                 /* op-specific saved state (arena) */
    int64_t iarg[8];             /* small integer arguments (axes, strides, ...) */
    float farg[4];               /* small float arguments (eps, scale, ...) */
};

/* ---- shapes ---- */
/* T_SHAPE(2,3,4) expands to "3, (const int64_t[]){2,3,4}" for the (ndim, shape) argument pairs. */
#define T_NARGS_(...) T_NARGS_I_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define T_NARGS_I_(a, b, c, d, e, f, n, ...) n
#define T_SHAPE(...) T_NARGS_(__VA_ARGS__), (const int64_t[]){__VA_ARGS__}

int64_t t_numel(const Tensor *t);
bool t_is_contiguous(const Tensor *t);
bool t_same_shape(const Tensor *a, const Tensor *b);
/* Writes "[2, 3, 4]" into buf; returns buf. */
char *t_shape_str(const Tensor *t, char *buf, size_t n);
/* Normalises a possibly negative axis; returns -1 if out of range. */
int t_axis(const Tensor *t, int axis);

/* ---- creation (arena) ---- */
Tensor *t_new(int ndim, const int64_t *shape);            /* uninitialised */
Tensor *t_zeros(int ndim, const int64_t *shape);
Tensor *t_full(int ndim, const int64_t *shape, float value);
Tensor *t_from(int ndim, const int64_t *shape, const float *src);   /* copies src */
Tensor *t_scalar(float value);                            /* shape [] (ndim 0) */
Tensor *t_new_like(const Tensor *t);                      /* contiguous, same shape */
/* ---- parameters / persistent tensors (malloc) ---- */
Tensor *t_param_new(int ndim, const int64_t *shape, bool requires_grad);  /* zero-filled, grad allocated */
void t_free(Tensor *t);                                   /* persistent tensors only; NULL ok */
/* A parameter used only as a linear layer's weight W [out, in] in inference, packed in place for the GEMM
 * kernels (t_sgemm_prepack: products x·Wᵀ stop repacking it; same results). Its data is then meaningful to
 * products only: training it or reading it otherwise needs t_unpack_weight first (params_save_file unpacks,
 * loading into it makes it plain). Moves the data to 64-byte aligned memory when needed. False, nothing
 * changed, when it cannot be packed (not a contiguous 2-D parameter, out not a multiple of 48, OpenBLAS in
 * use, memory short). */
bool t_prepack_weight(Tensor *w);
bool t_unpack_weight(Tensor *w);   /* back to plain [out, in]; false only when memory is short */
void t_zero_grad(Tensor *t);
/* Marks t's gradient zero without writing it (a training step's zero_grad): the next backward clears it
 * when it first adds into it, lets a kernel that writes every element store instead of add
 * (t_grad_buf_overwrite: no memset, and the weight-gradient GEMMs skip reading C), and at its end clears
 * the gradients it did not reach. Read t->grad only after that backward (t_grad_buf also clears it). */
void t_zero_grad_lazy(Tensor *t);
/* A tensor wrapping caller-owned memory (contiguous, no grad), header in the arena. */
Tensor *t_wrap(float *data, int ndim, const int64_t *shape);

/* ---- the arena ---- */
void *t_arena_alloc(size_t bytes);                        /* 64-byte aligned, uninitialised */
void *t_arena_calloc(size_t bytes);
size_t t_arena_mark(void);
void t_arena_release(size_t mark);                        /* frees everything allocated after mark */
/* Frees everything allocated after mark but the `bytes` at src (allocated after mark), which move down to the
 * new top of the arena; returns their new address (NULL: out of memory, reported). */
void *t_arena_release_keep(size_t mark, const void *src, size_t bytes);
/* In no-grad mode: everything allocated after mark is freed but x (a contiguous result allocated after
 * mark), which moves down; returns it (the inference forwards of a layer stack keep one layer's scratch at a
 * time). With gradients on, or x a view, returns x and frees nothing. */
Tensor *t_arena_keep(size_t mark, Tensor *x);
void t_arena_reset(void);                                 /* frees everything; clears the tape */
size_t t_arena_used(void);
/* Caps the arena's total size (0: no cap): growing past it is out of memory, reported as such. For
 * memory budgets, and for testing the out-of-memory paths. */
void t_arena_set_limit(size_t bytes);
/* An allocation failed (out of memory) since the last t_arena_reset: what this step computed after it is
 * unreliable (ops whose output could not be allocated returned NULL; the backward does not run). */
bool t_arena_failed(void);
size_t t_arena_high_water(void);
size_t t_arena_capacity(void);
size_t t_arena_block_count(void);                         /* > 1 only while still growing */
void t_arena_shutdown(void);                              /* releases all arena memory (end of program) */

/* ---- autograd ---- */
bool t_grad_enabled(void);
bool t_set_grad_enabled(bool on);                         /* returns the previous mode */
/* Records a node for `out` if grad is on and any input requires grad; returns NULL otherwise. */
TNode *t_record(const char *op, Tensor *out, TBackwardFn backward, int n_in, Tensor *const *in);
/* The gradient buffer of t (allocated zeroed on first use, in the arena for non-persistent tensors). */
float *t_grad_buf(Tensor *t);
/* The same for a kernel that will write every element of it: *overwrite is true when the buffer counts as
 * zero (new, or t_zero_grad_lazy), so the kernel may store its result instead of adding it. */
float *t_grad_buf_overwrite(Tensor *t, bool *overwrite);
/* Seeds d(root)=1 (root may be any shape: all ones) and runs the tape backwards. */
int t_backward(Tensor *root);   /* 0, or -1 after out of memory (message in t_errmsg; gradients incomplete) */
/* Seeds root's gradient with `seed` (contiguous, root's shape) and runs the tape backwards. */
int t_backward_with(Tensor *root, const float *seed);   /* seed NULL: ones */
size_t t_tape_len(void);
/* Frees the tape's own storage (end of program, after the last backward; with t_arena_shutdown it leaves
 * nothing for a leak checker). A later op grows a new tape. */
void t_tape_free(void);
/* Frees a persistent tensor's gradient buffer (a frozen parameter needs none); a later backward that
 * reaches it allocates a new one. */
void t_drop_grad(Tensor *t);
/* Marks t as a leaf needing a gradient (activations you want d/dx of, e.g. in gradient checks). */
void t_requires_grad(Tensor *t);

/* ---- errors ---- */
typedef void (*TErrorHandler)(const char *msg);
TErrorHandler t_set_error_handler(TErrorHandler h);      /* NULL restores the default (keep the message) */
void t_error(const char *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message without the handler, for functions that return -1 (files, checkpoints). */
void t_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *t_errmsg(void);                               /* the last message of this thread */

/* ---- threads ---- */
/* Reads DACLIP_THREADS (else OMP_NUM_THREADS, else all cores) and applies it to OpenMP and OpenBLAS. */
void t_init(void);
void t_set_threads(int n);
int t_threads(void);

/* ---- views (share storage; differentiable) ---- */
Tensor *t_reshape(Tensor *x, int ndim, const int64_t *shape);   /* view if contiguous, else copy; one -1 allowed */
Tensor *t_permute(Tensor *x, const int *perm);
Tensor *t_transpose(Tensor *x, int d0, int d1);
Tensor *t_slice(Tensor *x, int axis, int64_t start, int64_t end);  /* [start, end), view */
Tensor *t_select(Tensor *x, int axis, int64_t index);            /* drops the axis, view */
Tensor *t_contiguous(Tensor *x);                                  /* x itself if already contiguous */
Tensor *t_unsqueeze(Tensor *x, int axis);
Tensor *t_squeeze(Tensor *x, int axis);
Tensor *t_detach(Tensor *x);                                      /* same data, no grad */

/* Copies a strided tensor into a contiguous buffer of its logical shape. */
void t_copy_to(const Tensor *x, float *dst);
/* Adds a contiguous buffer (logical shape of x) into x's grad at the positions of a view into parent:
 * used by view backwards. */

#endif
