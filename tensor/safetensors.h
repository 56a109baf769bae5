#ifndef DACLIP_TENSOR_SAFETENSORS_H
#define DACLIP_TENSOR_SAFETENSORS_H
/* safetensors read/write. Reading maps the file (mmap) and bounds-checks every offset; F32 is used in
 * place, F16/BF16 are converted to F32. Writing is atomic (temp file in the same directory, fsync,
 * rename), so a crash during a save leaves the previous file intact. Errors: functions return NULL/-1
 * and t_errmsg() says what is wrong, naming the file. */
#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

typedef struct {
    char *name;
    int ndim;
    int64_t shape[T_MAX_DIMS];
    const float *data;     /* F32 view into the map, or a converted copy */
} StEntry;

typedef struct {
    char *path;
    int n;
    StEntry *entries;      /* in file order */
    char *metadata_json;   /* the "__metadata__" object as JSON text, or NULL */
    void *map;
    size_t map_len;
    float **owned;         /* converted F16/BF16 buffers */
    int n_owned;
} StFile;

StFile *st_open(const char *path);          /* NULL on error, see t_errmsg() */
void st_close(StFile *f);
const StEntry *st_find(const StFile *f, const char *name);

/* Writes n named tensors (contiguous logical data is taken with t_copy_to) and optional metadata:
 * a flat JSON object of string values, e.g. {"step":"100"} (pass NULL for none). */
int st_save(const char *path, int n, const char *const *names, Tensor *const *tensors, const char *metadata_json);

/* Copies the string value of `key` in the file's __metadata__ into buf; -1 when absent or too long. */
int st_meta_get(const StFile *f, const char *key, char *buf, size_t n);

/* Test hook: called by st_save at each phase ("opened", "header", "data", "flushed", "synced",
 * "renamed") so tests can kill the process mid-save. NULL (the default) disables it. */
void st_set_save_hook(void (*hook)(const char *phase));

#endif
