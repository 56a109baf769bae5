#ifndef DACLIP_NN_MODULE_H
#define DACLIP_NN_MODULE_H
/* Parameters with hierarchical names. A model is a tree of plain layer structs holding Tensor*
 * parameters; each layer's init registers its parameters in a ParamSet under "prefix.name", so the
 * names are exactly the PyTorch state-dict keys (e.g. "visual.transformer.resblocks.3.attn.in_proj_weight").
 * The ParamSet is the state dict: ordered (name, tensor) pairs. It owns the tensors and the names. */
#include <stdbool.h>
#include <stdint.h>

#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    char *name;
    Tensor *t;              /* persistent; t->name points at name */
    bool frozen;            /* no grad, not given to the optimizer */
} Param;

typedef struct {
    Param *items;
    int n, cap;
    bool failed;            /* a parameter could not be made (out of memory; message in t_errmsg) */
} ParamSet;

void params_init(ParamSet *ps);
void params_free(ParamSet *ps);               /* frees every tensor and name */
/* Creates a zero-filled parameter "prefix.name" (or "name" when prefix is "" or NULL) and registers it.
 * Out of memory: NULL, ps->failed set and the message in t_errmsg; layer inits go on (fills of NULL do
 * nothing) and the model's init returns -1 at its end. */
Tensor *params_new(ParamSet *ps, const char *prefix, const char *name, int ndim, const int64_t *shape);
/* Registers an existing persistent tensor under a name (takes ownership; frees it and sets ps->failed
 * when it cannot: a duplicate name, out of memory, or t NULL). */
bool params_add(ParamSet *ps, const char *full_name, Tensor *t);
Param *params_find(const ParamSet *ps, const char *name);
/* Joins prefix and name into buf ("a.b" or "b"); returns buf. */
char *nn_join(char *buf, size_t n, const char *prefix, const char *name);

/* Freezes (or unfreezes) every parameter whose name starts with prefix ("" = all). */
void params_freeze(ParamSet *ps, const char *prefix, bool frozen);
int64_t params_count(const ParamSet *ps, const char *prefix, bool trainable_only);
void params_zero_grad(ParamSet *ps);
/* A training step's zero_grad: the gradients count as zero and are cleared or overwritten by the next
 * t_backward (t_zero_grad_lazy), which saves writing 350 MB for a ViT-B/32 and reading it back in the
 * weight-gradient GEMMs. optim_step and clip_grad_norm clear any that no backward has touched since. */
void params_zero_grad_lazy(ParamSet *ps);

/* ---- state-dict loading by name ----
 * Strict: every model parameter must be present with the same shape and no extra keys exist; on
 * failure returns -1 and t_errmsg() lists every missing, unexpected and wrong-shape key in one message.
 * Non-strict: loads what matches, and reports the rest through the counts and t_errmsg(). */
typedef struct {
    int missing, unexpected, wrong_shape, loaded;
} LoadReport;
typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} NamedArray;
/* An array whose data is NULL is checked (name, shape) but not copied: the caller fills the parameter. */
int params_load_arrays(ParamSet *ps, int n, const NamedArray *arrays, bool strict, LoadReport *rep);
/* From/to a safetensors file; `strip_prefix` (e.g. "module.") is removed from file names when present. */
int params_load_file(ParamSet *ps, const char *path, bool strict, const char *strip_prefix, LoadReport *rep);
int params_save_file(const ParamSet *ps, const char *path, const char *metadata_json);

/* ---- initialisers (PyTorch defaults) ---- */
void init_kaiming_uniform(Tensor *w, TRng *r, int64_t fan_in);        /* Linear/Conv weight: U(±1/sqrt(fan_in)) */
void init_uniform_fan_in(Tensor *b, TRng *r, int64_t fan_in);          /* Linear/Conv bias: U(±1/sqrt(fan_in)) */
void init_normal(Tensor *t, TRng *r, float std);
void init_const(Tensor *t, float v);                                   /* ones/zeros (norms, zero-init) */

#endif
