/* daclip clip-classify: zero-shot classification of an image against text labels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "nn/contrastive.h"
#include "tensor/ops.h"
#include "train/clip_io.h"
#include "train/commands.h"
#include "train/options.h"

static const char usage_head[] =
    "usage: daclip clip-classify --model M.safetensors --image X.png --labels \"a,b,c\" [--vocab FILE]\n\n"
    "Prints softmax(100 * cos(image, label)) for each label, most likely first, as CSV (open_clip's zero-shot\n"
    "recipe; the labels are tokenised as given, with no template).\n";

#define MAX_LABELS 256

typedef struct {
    const char *label;
    float p;
} Scored;

static int by_p(const void *a, const void *b) {
    float x = ((const Scored *)a)->p, y = ((const Scored *)b)->p;
    return (x < y) - (x > y);
}

int cmd_clip_classify(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *labels = NULL, *vocab = NULL;
    const OptSpec specs[] = {
        {"--model", OPT_STR | OPT_REQUIRED, &model, 0, 0, "FILE", "model.safetensors written by train-clip"},
        {"--image", OPT_STR | OPT_REQUIRED, &image, 0, 0, "FILE", "the image (PNG or JPEG)"},
        {"--labels", OPT_STR | OPT_REQUIRED, &labels, 0, 0, "LIST", "comma-separated labels, e.g. \"a dog,a cat\""},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE",
         "BPE merges (default: the one the model names, else $DACLIP_VOCAB,\nelse the official file)"},
        {0}};
    int parsed = opts_parse("clip-classify", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    char *lab = strdup(labels);
    if (!lab) {
        fprintf(stderr, "daclip clip-classify: out of memory\n");
        return 1;
    }
    char *names[MAX_LABELS];
    int n = 0;
    for (char *s = strtok(lab, ","); s; s = strtok(NULL, ",")) {
        while (*s == ' ') s++;
        if (!*s) continue;
        if (n == MAX_LABELS) {
            free(lab);
            return opts_fail("clip-classify", "--labels", "more than %d labels", MAX_LABELS);
        }
        names[n++] = s;
    }
    if (n == 0) {
        free(lab);
        return opts_fail("clip-classify", "--labels", "no labels given");
    }
    ClipModel cm;
    if (clip_model_open(&cm, model, vocab, "clip-classify")) {
        free(lab);
        return 1;
    }
    int rc = 1;
    Image im = {0};
    int S = cm.m.cfg.vision.image_size, L = cm.m.cfg.context_length;
    Tensor *img = t_new(T_SHAPE(1, 3, S, S));
    if (image_load(image, &im)) {
        fprintf(stderr, "daclip clip-classify: %s\n", data_error());
    } else if (clip_preprocess(&im, S, img->data)) {
        fprintf(stderr, "daclip clip-classify: %s: %s\n", image, data_error());
    } else {
        t_set_grad_enabled(false);
        int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)n * L);
        for (int i = 0; i < n; i++) tokenizer_tokenize_n(cm.tok, names[i], ids + (size_t)i * L, L);
        Tensor *ei = clip_encode_image(&cm.m, img, NULL, NULL);                    /* [1, E] */
        Tensor *et = clip_encode_text(&cm.m, ids, n);                              /* [n, E] */
        Tensor *fi = nn_l2_normalize(ei), *ft = nn_l2_normalize(et);
        Tensor *p = t_softmax(t_mul_scalar(t_matmul(fi, t_transpose(ft, 0, 1)), 100.0f), -1);   /* [1, n] */
        int64_t E = cm.m.cfg.vision.embed_dim;
        if (p && (!clip_all_finite(ei->data, E) || !clip_all_finite(et->data, n * E) || !clip_all_finite(p->data, n))) {
            /* NaN weights would otherwise print probabilities of 0 for every label and exit 0 */
            fprintf(stderr, "daclip clip-classify: %s: the model gives non-finite values (damaged weights?)\n", model);
        } else if (p) {
            Scored sc[MAX_LABELS];
            for (int i = 0; i < n; i++) sc[i] = (Scored){names[i], p->data[i]};
            qsort(sc, (size_t)n, sizeof sc[0], by_p);
            printf("label,probability\n");
            for (int i = 0; i < n; i++) printf("%s,%.4f\n", sc[i].label, sc[i].p);
            rc = 0;
        }
    }
    image_free(&im);
    free(lab);
    clip_model_close(&cm);
    if (out_close_stdout("clip-classify")) rc = 1;
    return rc;
}
