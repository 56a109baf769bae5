#ifndef DACLIP_TENSOR_PT_READER_H
#define DACLIP_TENSOR_PT_READER_H
/* A safe reader for PyTorch checkpoints (torch.save's zip format: `archive/data.pkl` + `archive/data/N`).
 * data.pkl runs through a pickle machine that knows only the opcodes and the allow-listed globals a state dict
 * and an open_clip training checkpoint need (collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
 * _rebuild_parameter, the torch.*Storage types, numpy's scalar/dtype and _codecs.encode, which optimizer
 * param_groups carry); any other global, opcode or inconsistency is refused: loading never executes or trusts
 * anything (the promise of torch.load(weights_only=True) and of safetensors). Tensors are found under their
 * dotted path in the pickled structure ("state_dict.clip.visual.proj", "optimizer.state.3.exp_avg") and are
 * read lazily from an mmap of the file: what is never read (an optimizer state) costs nothing. Storages shared
 * by several tensors stay shared (pt_entry's storage field tells which). */
#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

typedef enum { PT_F32, PT_F16, PT_BF16, PT_F64, PT_I64, PT_I32, PT_I16, PT_I8, PT_U8, PT_BOOL } PtDType;

typedef struct {
    char *name;              /* dotted path of the tensor in the pickled object */
    PtDType dtype;
    int ndim;
    int64_t shape[T_MAX_DIMS];
    int64_t stride[T_MAX_DIMS];  /* in elements */
    int64_t offset;          /* storage offset, in elements */
    int storage;             /* index of its storage (tensors with one index share memory) */
} PtEntry;

typedef struct PtFile PtFile;

/* NULL with t_errmsg() naming the file and the problem. */
PtFile *pt_open(const char *path);
void pt_close(PtFile *f);
const char *pt_path(const PtFile *f);
int pt_count(const PtFile *f);
const PtEntry *pt_entry(const PtFile *f, int i);
const char *pt_dtype_name(PtDType d);
/* The tensor's values as contiguous float32 (F16/BF16/F64 converted; integer types refused), into out
 * (numel floats). Checks the storage's CRC-32 the first time it is read. 0, or -1 with t_errmsg(). */
int pt_read_f32(PtFile *f, const PtEntry *e, float *out);

#endif
