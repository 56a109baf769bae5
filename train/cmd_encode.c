/* daclip encode: CLIP embeddings of a folder of images (or of texts) as CSV. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "nn/contrastive.h"
#include "tensor/ops.h"
#include "train/clip_io.h"
#include "train/commands.h"
#include "train/progress.h"

static void usage(FILE *f) {
    fprintf(f, "usage: daclip encode --model M.safetensors (--images DIR | --text TEXT...) [--out FILE.csv]\n"
               "                    [--vocab FILE] [--normalize]\n\n"
               "Writes one CSV row per image (or text): the name, then the E embedding values (unnormalised unless\n"
               "--normalize). Output goes to stdout unless --out is given.\n");
}

static void write_row(FILE *out, const char *name, const float *v, int64_t E) {
    fputc('"', out);
    for (const char *c = name; *c; c++) {
        if (*c == '"') fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
    for (int64_t k = 0; k < E; k++) fprintf(out, ",%.7g", v[k]);
    fputc('\n', out);
}

int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *dir = NULL, *outp = NULL, *vocab = NULL;
    int text_from = -1;
    bool normalize = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--normalize")) { normalize = true; continue; }
        if (!strcmp(argv[i], "--text")) { text_from = i + 1; break; }
        if (i + 1 >= argc) {
            fprintf(stderr, "daclip encode: %s needs a value\n", argv[i]);
            return 1;
        }
        if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--images")) dir = argv[++i];
        else if (!strcmp(argv[i], "--out")) outp = argv[++i];
        else if (!strcmp(argv[i], "--vocab")) vocab = argv[++i];
        else {
            fprintf(stderr, "daclip encode: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    if (!model || (!dir && text_from < 0)) {
        usage(stderr);
        return 1;
    }
    ClipModel cm;
    if (clip_model_open(&cm, model, vocab, "encode")) return 1;
    FILE *out = outp ? fopen(outp, "w") : stdout;
    int rc = 0;
    if (!out) {
        fprintf(stderr, "daclip encode: cannot write %s\n", outp);
        rc = 1;
        goto done;
    }
    t_set_grad_enabled(false);
    int64_t E = cm.m.cfg.vision.embed_dim;
    int S = cm.m.cfg.vision.image_size, L = cm.m.cfg.context_length;
    if (text_from >= 0) {
        for (int i = text_from; i < argc; i++) {
            size_t mark = t_arena_mark();
            int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)L);
            tokenizer_tokenize_n(cm.tok, argv[i], ids, L);
            Tensor *f = clip_encode_text(&cm.m, ids, 1);
            if (normalize) f = nn_l2_normalize(f);
            write_row(out, argv[i], f->data, E);
            t_arena_release(mark);
        }
    } else {
        char **paths;
        int n;
        if (dataset_list_images(dir, &paths, &n)) {
            fprintf(stderr, "daclip encode: %s\n", data_error());
            rc = 1;
            goto done;
        }
        Progress bar;
        progress_begin(&bar, "encode", n, "img");
        for (int i = 0; i < n; i++) {
            size_t mark = t_arena_mark();
            Image im;
            Tensor *img = t_new(T_SHAPE(1, 3, S, S));
            if (image_load(paths[i], &im) || clip_preprocess(&im, S, img->data)) {
                fprintf(stderr, "\ndaclip encode: skipping: %s\n", data_error());
                rc = 1;
            } else {
                Tensor *f = clip_encode_image(&cm.m, img, NULL, NULL);
                if (normalize) f = nn_l2_normalize(f);
                const char *base = strrchr(paths[i], '/');
                write_row(out, base ? base + 1 : paths[i], f->data, E);
            }
            image_free(&im);
            t_arena_release(mark);
            progress_update(&bar, i + 1, NULL);
        }
        progress_end(&bar);
        dataset_free_list(paths, n);
    }
done:
    if (out && out != stdout) fclose(out);
    clip_model_close(&cm);
    return rc;
}
