/* daclip restore: DA-CLIP + IR-SDE restoration of PNG/JPEG images of any size (reference §4.5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataset.h"
#include "data/image_io.h"
#include "train/commands.h"
#include "train/options.h"
#include "train/paths.h"
#include "train/restore_pipeline.h"

static const char usage_head[] =
    "usage: daclip restore --daclip DACLIP.safetensors --model UNET.safetensors IMAGE|DIR... --out DIR\n"
    "                      [--steps N] [--mode posterior|sde] [--seed N] [--tile PX] [--overlap PX] [--ext png|jpg]\n\n"
    "Restores PNG or JPEG images (a folder means every image in it) of any size: DA-CLIP reads each image once\n"
    "from its 224 CLIP view (the predicted degradation and its probability are printed), then the IR-SDE\n"
    "U-Net runs the reverse process from LQ + noise, one U-Net evaluation per step (posterior sampling, as the\n"
    "official test.py). The result has the input's exact size and is written to DIR/<name>.<ext>.\n"
    "Large images are restored in overlapping tiles blended at every step (no seams, bounded memory); the\n"
    "noise depends only on --seed and the pixel position, so the tiling does not change it. A U-Net trained\n"
    "without DA-CLIP (train-ir --no-daclip) needs no --daclip.\n";

static int parse_mode(const char *s, IrSdeSampleMode *m) {
    if (!strcmp(s, "posterior")) *m = IRSDE_SAMPLE_POSTERIOR;
    else if (!strcmp(s, "sde")) *m = IRSDE_SAMPLE_SDE;
    else return -1;
    return 0;
}

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* DIR/<stem>.<ext> for every input; two inputs with one stem would overwrite each other, and an output that
 * is an input would destroy it: both refused before anything is written. */
static char **output_paths(const char *dir, char **files, int n, const char *ext) {
    char **outs = calloc((size_t)(n ? n : 1), sizeof *outs);
    for (int i = 0; outs && i < n; i++) {
        char stem[1024];
        restore_stem(files[i], stem, sizeof stem);
        size_t len = strlen(dir) + strlen(stem) + strlen(ext) + 3;
        if (!(outs[i] = malloc(len))) {
            dataset_free_list(outs, i);
            return NULL;
        }
        snprintf(outs[i], len, "%s/%s.%s", dir, stem, ext);
        for (int j = 0; j < n; j++)
            if (same_file(outs[i], files[j])) {
                fprintf(stderr, "daclip restore: %s would overwrite the input %s; choose another --out\n", outs[i],
                        files[j]);
                dataset_free_list(outs, i + 1);
                return NULL;
            }
        for (int j = 0; j < i; j++)
            if (!strcmp(outs[i], outs[j])) {
                fprintf(stderr, "daclip restore: %s and %s would both be written to %s; restore them separately\n",
                        files[j], files[i], outs[i]);
                dataset_free_list(outs, i + 1);
                return NULL;
            }
    }
    return outs;
}

/* Loads, restores and writes the images idx[0..k). Returns the number of failures, -1 on a fatal error. */
static int restore_group(Restorer *r, char **files, char **outs, const RestoreEmbedding *emb, const int *idx, int k,
                         const RestoreOptions *o) {
    Image lq[RESTORER_GROUP_MAX] = {{0}}, res[RESTORER_GROUP_MAX] = {{0}};
    const RestoreEmbedding *e[RESTORER_GROUP_MAX];
    char label[300], err[2048] = "";
    int failures = 0, m = 0, at[RESTORER_GROUP_MAX];
    for (int j = 0; j < k; j++) {
        if (image_load(files[idx[j]], &lq[m])) {   /* changed since DA-CLIP read it */
            fprintf(stderr, "daclip restore: %s\n", data_error());
            failures++;
            continue;
        }
        e[m] = &emb[idx[j]], at[m++] = idx[j];
    }
    if (m == 0) return failures;
    const char *name = strrchr(files[at[0]], '/') ? strrchr(files[at[0]], '/') + 1 : files[at[0]];
    if (m == 1) snprintf(label, sizeof label, "%.200s", name);
    else snprintf(label, sizeof label, "%.200s +%d", name, m - 1);
    int rc = restorer_run(r, lq, e, m, o, label, res, err, sizeof err);
    for (int j = 0; j < m; j++) {
        if (!rc && restore_save_atomic(outs[at[j]], &res[j])) {
            fprintf(stderr, "daclip restore: %s\n", data_error());
            failures++;
        } else if (!rc) {
            fprintf(stderr, "wrote %s (%dx%d)\n", outs[at[j]], res[j].w, res[j].h);
        }
        image_free(&lq[j]), image_free(&res[j]);
    }
    if (rc) {
        fprintf(stderr, "daclip restore: %s\n", err);
        return -1;
    }
    return failures;
}

int cmd_restore(int argc, char **argv) {
    const char *daclip = NULL, *model = NULL, *out = NULL, *mode_name = "posterior", *ext = "png";
    int steps = 0, tile = 0, overlap = 0;
    uint64_t seed = 0;
    const OptSpec specs[] = {
        {"--daclip", OPT_STR, &daclip, 0, 0, "FILE", "DA-CLIP model (train-daclip); not needed by a --no-daclip U-Net"},
        {"--model", OPT_STR | OPT_REQUIRED, &model, 0, 0, "FILE", "IR-SDE U-Net model (train-ir)"},
        {"--out", OPT_STR | OPT_REQUIRED, &out, 0, 0, "DIR", "output folder (created)"},
        {"--steps", OPT_INT, &steps, 1, 100000, "N", "sampling steps (default: the trained T, 100); fewer rescale\n"
                                                    "the schedule and the time input (official sample_T)"},
        {"--mode", OPT_STR, &mode_name, 0, 0, "MODE", "posterior (default, the official sampler) or sde"},
        {"--seed", OPT_U64, &seed, 0, 0, "N", "noise seed (default 0)"},
        {"--tile", OPT_INT, &tile, 0, 1 << 20, "PX", "tile edge, a multiple of 16 (default: whole image up to 512x512\n"
                                                    "pixels, else 384)"},
        {"--overlap", OPT_INT, &overlap, 0, 1 << 20, "PX", "overlap of neighbouring tiles (default 48, at most tile/4)"},
        {"--ext", OPT_STR, &ext, 0, 0, "EXT", "output format: png (default) or jpg"},
        {0}};
    char **pos;
    int npos;
    int parsed = opts_parse("restore", usage_head, specs, argc, argv, &pos, &npos);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    RestoreOptions o = restore_options_default();
    if (parse_mode(mode_name, &o.mode)) return opts_fail("restore", "--mode", "'%s' is not posterior or sde", mode_name);
    if (strcmp(ext, "png") && strcmp(ext, "jpg") && strcmp(ext, "jpeg"))
        return opts_fail("restore", "--ext", "'%s' is not png or jpg", ext);
    if (tile > 0 && overlap >= tile) return opts_fail("restore", "--overlap", "%d is not smaller than --tile %d", overlap, tile);
    if (npos == 0) return opts_fail("restore", NULL, "no images given (see --help)");
    o.seed = seed, o.tile = tile, o.overlap = overlap;
    t_init();
    char **files = NULL, **outs = NULL, err[2048] = "";
    int n = 0, rc = 1, failures = 0;
    RestoreEmbedding *emb = NULL;
    int *idx = NULL;
    Restorer r;
    bool opened = false;
    if (restore_collect_inputs("restore", pos, npos, &files, &n)) return 1;
    if (n == 0) {
        fprintf(stderr, "daclip restore: nothing to restore\n");
        goto done;
    }
    if (!(outs = output_paths(out, files, n, ext))) goto done;
    if (path_mkdir_p(out)) {
        fprintf(stderr, "daclip restore: cannot create %s\n", out);
        goto done;
    }
    if (restorer_open(&r, daclip, model, steps, err, sizeof err)) {
        fprintf(stderr, "daclip restore: %s\n", err);
        goto done;
    }
    opened = true;
    emb = calloc((size_t)n, sizeof *emb);
    idx = malloc(sizeof *idx * (size_t)n);
    if (!emb || !idx) goto done;
    failures = restorer_embed_files(&r, "restore", files, n, emb, err, sizeof err);
    if (failures < 0) {
        fprintf(stderr, "daclip restore: %s\n", err);
        goto done;
    }
    int todo = 0;
    if (r.has_daclip) printf("%-40s  %-16s  %s\n", "image", "degradation", "probability");
    for (int i = 0; i < n; i++) {
        if (!emb[i].ok) continue;
        idx[todo++] = i;
        if (r.has_daclip) printf("%-40s  %-16s  %.3f\n", files[i], degrade_name(emb[i].type), emb[i].prob);
    }
    fflush(stdout);
    int written = 0;
    for (int first = 0; first < todo;) {
        int k = restore_group_size(emb, idx, todo, first);
        int f = restore_group(&r, files, outs, emb, idx + first, k, &o);
        if (f < 0) goto done;
        failures += f, written += k - f, first += k;
    }
    fprintf(stderr, "restored %d of %d images into %s (%d steps, %s sampling)\n", written, n, out, r.sde.steps,
            mode_name);
    if (failures) fprintf(stderr, "daclip restore: %d of %d images failed\n", failures, n);
    rc = failures ? 1 : 0;
done:
    if (out_close_stdout("restore")) rc = 1;
    for (int i = 0; emb && i < n; i++) restore_embedding_free(&emb[i]);
    free(emb), free(idx);
    if (outs) dataset_free_list(outs, n);
    dataset_free_list(files, n);
    if (opened) restorer_close(&r);
    t_arena_shutdown();
    return rc;
}
