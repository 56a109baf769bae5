/* daclip classify: the degradation of images, from a DA-CLIP model (reference §1.7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/image_io.h"
#include "tensor/tensor.h"
#include "train/commands.h"
#include "train/daclip_model.h"
#include "train/options.h"

static const char usage_head[] =
    "usage: daclip classify --model DACLIP.safetensors IMAGE|DIR... [--csv FILE]\n\n"
    "Prints the degradation of each image (PNG or JPEG; a folder means every image in it) as predicted by a\n"
    "DA-CLIP model: softmax(100 * cos(degradation embedding, name embedding)) over the ten degradation names,\n"
    "the most likely first, with its probability. --csv writes every image's ten probabilities.\n";

#define BATCH 16

/* Expands folders into their images (sorted); files pass through. */
static int collect(char **args, int n, char ***out, int *nout) {
    char **list = NULL;
    int cnt = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        char **files = NULL;
        int nf = 0;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (dataset_list_images(args[i], &files, &nf)) {
                fprintf(stderr, "daclip classify: %s\n", data_error());
                goto fail;
            }
            if (nf == 0) fprintf(stderr, "daclip classify: %s: no PNG or JPEG images in this folder\n", args[i]);
        } else {
            files = malloc(sizeof *files);
            if (!files || !(files[0] = strdup(args[i]))) {
                free(files);
                goto fail;
            }
            nf = 1;
        }
        for (int k = 0; k < nf; k++) {
            if (cnt == cap) {
                cap = cap ? 2 * cap : 64;
                char **grown = realloc(list, sizeof *list * (size_t)cap);
                if (!grown) {
                    dataset_free_list(files + k, nf - k);
                    free(files);
                    goto fail;
                }
                list = grown;
            }
            list[cnt++] = files[k];
        }
        free(files);
    }
    *out = list, *nout = cnt;
    return 0;
fail:
    dataset_free_list(list, cnt);
    return -1;
}

int cmd_classify(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *csv = NULL;
    const OptSpec specs[] = {
        {"--model", OPT_STR | OPT_REQUIRED, &model, 0, 0, "FILE", "a DA-CLIP model (model.safetensors of train-daclip)"},
        {"--csv", OPT_STR, &csv, 0, 0, "FILE", "write file,predicted,p_<name>... for every image"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges (default: the one the model names)"},
        {0}};
    char **pos;
    int npos;
    int parsed = opts_parse("classify", usage_head, specs, argc, argv, &pos, &npos);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (npos == 0) return opts_fail("classify", NULL, "no images given (see --help)");
    t_init();
    char **files = NULL;
    int n = 0;
    if (collect(pos, npos, &files, &n)) return 1;
    if (n == 0) {
        fprintf(stderr, "daclip classify: nothing to classify\n");
        return 1;
    }
    char err[2048] = "";
    DaclipModel m;
    if (daclip_model_load(model, vocab, &m, err, sizeof err)) {
        fprintf(stderr, "daclip classify: %s\n", err);
        dataset_free_list(files, n);
        return 1;
    }
    daclip_model_prepack(&m);   /* inference only from here */
    int S = m.clip.cfg.vision.image_size, failures = 0, rc = 0;
    size_t per = (size_t)3 * S * S;
    float *views = malloc(sizeof(float) * per * BATCH), *probs = malloc(sizeof(float) * DEGRADE_N * BATCH);
    int *at = malloc(sizeof(int) * BATCH);
    FILE *fc = NULL;
    DataOutFile csv_out = {0};
    if (!views || !probs || !at) {
        fprintf(stderr, "daclip classify: out of memory\n");
        rc = 1;
        goto done;
    }
    if (csv) {
        if (data_out_open(&csv_out, csv)) {
            fprintf(stderr, "daclip classify: %s\n", data_error());
            rc = 1;
            goto done;
        }
        fc = csv_out.fp;
        fprintf(fc, "file,predicted");
        for (int t = 0; t < DEGRADE_N; t++) fprintf(fc, ",p_%s", degrade_name(t));
        fprintf(fc, "\n");
    }
    printf("%-40s  %-16s  %s\n", "image", "degradation", "probability");
    for (int start = 0; start < n; start += BATCH) {
        int B = 0;
        /* decode a batch; unreadable files are reported and skipped */
        for (int i = start; i < n && i < start + BATCH; i++) {
            Image im = {0};
            if (image_load(files[i], &im) || clip_preprocess(&im, S, views + per * B)) {
                fprintf(stderr, "daclip classify: %s\n", data_error());
                failures++;
                if (im.px) image_free(&im);
                continue;
            }
            image_free(&im);
            at[B++] = i;
        }
        if (B == 0) continue;
        size_t mark = t_arena_mark();
        if (daclip_classify(&m, views, B, probs, NULL, NULL)) {
            fprintf(stderr, "daclip classify: %s: %s\n", model, t_errmsg());
            rc = 1;
            t_arena_release(mark);
            break;
        }
        t_arena_release(mark);
        for (int b = 0; b < B; b++) {
            const float *p = probs + b * DEGRADE_N;
            int best = 0;
            for (int k = 1; k < DEGRADE_N; k++)
                if (p[k] > p[best]) best = k;
            printf("%-40s  %-16s  %.3f\n", files[at[b]], degrade_name(best), p[best]);
            if (fc) {
                fprintf(fc, "\"%s\",%s", files[at[b]], degrade_name(best));
                for (int k = 0; k < DEGRADE_N; k++) fprintf(fc, ",%.6f", p[k]);
                fprintf(fc, "\n");
            }
        }
    }
    if (fc) {
        fc = NULL;
        if (rc) {
            data_out_abort(&csv_out);
        } else if (data_out_commit(&csv_out)) {
            fprintf(stderr, "daclip classify: %s\n", data_error());
            rc = 1;
        } else {
            fprintf(stderr, "wrote %s\n", csv);
        }
    }
    if (failures) {
        fprintf(stderr, "daclip classify: %d of %d images could not be read\n", failures, n);
        rc = 1;
    }
    if (out_close_stdout("classify")) rc = 1;
done:
    data_out_abort(&csv_out);
    free(views), free(probs), free(at);
    dataset_free_list(files, n);
    daclip_model_free(&m);
    t_arena_shutdown();
    return rc;
}
