#ifndef DACLIP_TRAIN_CLIP_IO_H
#define DACLIP_TRAIN_CLIP_IO_H
/* CLIP model files: a safetensors state dict with open_clip names whose __metadata__ holds the config
 * (clip_config_to_json) and the vocabulary path it was trained with. */
#include <stdbool.h>
#include <stdint.h>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "nn/module.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"

/* The official vocabulary shipped in data/assets/ (licence in data/assets/LICENSES.md). */
#define DACLIP_VOCAB_ASSET "clip/bpe_simple_vocab_16e6.txt.gz"

/* Path of the shipped official vocabulary, found next to the binary whatever the working directory
 * (data/assets.h); when it is missing, the first place looked (for messages). Static storage. */
const char *clip_default_vocab(void);

/* The vocabulary to use: `given`, else $DACLIP_VOCAB, else the shipped official file when present; NULL if
 * none. */
const char *clip_vocab_path(const char *given);

/* Loads model + tokenizer. vocab_override may be NULL (then the file's own "vocab" entry, then
 * clip_vocab_path(NULL)). Returns 0, or -1 with a message naming the file in err. */
int clip_model_load(const char *path, const char *vocab_override, Clip *m, ParamSet *ps, Tokenizer **tok, char *err,
                    size_t errlen);

/* A loaded model for a command: model, its parameters and its tokenizer. */
typedef struct {
    Clip m;
    ParamSet ps;
    Tokenizer *tok;
} ClipModel;
/* Sets up threads (t_init) and loads; on failure prints "daclip <cmd>: <reason>" and returns -1. */
int clip_model_open(ClipModel *cm, const char *path, const char *vocab, const char *cmd);
/* Frees the model and tokenizer and the activation arena (end of a command). */
void clip_model_close(ClipModel *cm);

/* Whether all n values are finite: a model with NaN/inf weights gives NaN embeddings and probabilities, which
 * must be reported as an error, not printed as results. */
bool clip_all_finite(const float *v, int64_t n);

/* The metadata of a model file: the config (clip_config_to_object) and "vocab" (made absolute), as an object to
 * which a caller may add its own keys (e.g. "arch") before json_object_write; -1 if the vocabulary path is not
 * valid UTF-8 (t_errmsg). clip_model_meta gives the text, -1 also when it is longer than n. */
int clip_model_meta_object(const ClipConfig *cfg, const char *vocab, JsonObject *meta);
int clip_model_meta(const ClipConfig *cfg, const char *vocab, char *buf, size_t n);

/* A configuration read from a file must not need more parameters than the file holds: checked before the model
 * is allocated, so a crafted width or depth costs nothing. -1 with t_errmsg() naming the file. */
int clip_config_fits_file(const ClipConfig *cfg, const StFile *f);

#endif
