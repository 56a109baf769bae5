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

static void usage(FILE *f) {
    fprintf(f, "usage: daclip clip-classify --model M.safetensors --image X.png --labels \"a,b,c\" [--vocab FILE]\n\n"
               "Prints softmax(100 * cos(image, label)) for each label, most likely first (open_clip's zero-shot\n"
               "recipe; the labels are tokenised as given, with no template).\n");
}

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
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "daclip clip-classify: %s needs a value\n", argv[i]);
            return 1;
        }
        if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--image")) image = argv[++i];
        else if (!strcmp(argv[i], "--labels")) labels = argv[++i];
        else if (!strcmp(argv[i], "--vocab")) vocab = argv[++i];
        else {
            fprintf(stderr, "daclip clip-classify: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    if (!model || !image || !labels) {
        usage(stderr);
        return 1;
    }
    ClipModel cm;
    if (clip_model_open(&cm, model, vocab, "clip-classify")) return 1;
    int rc = 1;
    char *lab = strdup(labels);
    char *names[256];
    int n = 0;
    for (char *s = strtok(lab, ","); s && n < 256; s = strtok(NULL, ",")) {
        while (*s == ' ') s++;
        if (*s) names[n++] = s;
    }
    Image im = {0};
    int S = cm.m.cfg.vision.image_size, L = cm.m.cfg.context_length;
    Tensor *img = t_new(T_SHAPE(1, 3, S, S));
    if (n == 0) {
        fprintf(stderr, "daclip clip-classify: no labels given\n");
    } else if (image_load(image, &im) || clip_preprocess(&im, S, img->data)) {
        fprintf(stderr, "daclip clip-classify: %s\n", data_error());
    } else {
        t_set_grad_enabled(false);
        int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)n * L);
        for (int i = 0; i < n; i++) tokenizer_tokenize_n(cm.tok, names[i], ids + (size_t)i * L, L);
        Tensor *fi = nn_l2_normalize(clip_encode_image(&cm.m, img, NULL, NULL));   /* [1, E] */
        Tensor *ft = nn_l2_normalize(clip_encode_text(&cm.m, ids, n));             /* [n, E] */
        Tensor *p = t_softmax(t_mul_scalar(t_matmul(fi, t_transpose(ft, 0, 1)), 100.0f), -1);   /* [1, n] */
        if (p) {
            Scored sc[256];
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
    return rc;
}
