#ifndef DACLIP_TENSOR_SAFETENSORS_H
#define DACLIP_TENSOR_SAFETENSORS_H
/* safetensors read/write. Reading maps the file (mmap) and checks everything before use: a strict JSON
 * header (tensor/json.h), every offset against the file size, the tensors tiling the data buffer exactly,
 * __metadata__ an object of strings. F32 is used in place, F16/BF16 are converted to F32. Writing is atomic (temp file in the same directory, fsync,
 * rename), so a crash during a save leaves the previous file intact. Errors: functions return NULL/-1
 * and t_errmsg() says what is wrong, naming the file. */
#include <stddef.h>
#include <stdint.h>

#include "tensor/json.h"
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
/* The same in F16 (round to nearest even; half the size, ~3 significant digits: for shipping models).
 * A finite value beyond F16's range (|x| > 65504) is refused, naming the tensor. */
int st_save_f16(const char *path, int n, const char *const *names, Tensor *const *tensors, const char *metadata_json);

/* Copies the string value of `key` in the file's __metadata__ into buf; -1 when absent or too long. */
int st_meta_get(const StFile *f, const char *key, char *buf, size_t n);
/* The whole __metadata__ as an object (empty when the file has none); free with json_object_free. -1 with
 * t_errmsg() naming the file if it is malformed (st_open has already checked it, so only out of memory). */
int st_meta(const StFile *f, JsonObject *meta);

/* Removes the temporaries "<path>.tmp.<pid>.XXXXXX" that saves of `path` by processes no longer alive left
 * behind (killed mid-save), and pid-less "<path>.tmp.XXXXXX" ones of earlier versions older than an hour.
 * st_save calls it; the count removed is returned. Temporaries of live processes are never touched. */
int st_remove_stale_temps(const char *path);

/* Test hook: called by st_save at each phase ("opened", "header", "data", "flushed", "synced",
 * "renamed") so tests can kill the process mid-save. NULL (the default) disables it. */
void st_set_save_hook(void (*hook)(const char *phase));

#endif
