/* daclip make-dataset: clean photos -> DA-CLIP training folders (official layout) with captions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/dataset.h"
#include "train/commands.h"
#include "train/progress.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: daclip make-dataset --src DIR --out ROOT [--captions FILE] [--val-frac 0.1]\n"
            "                           [--types all|a,b,...] [--seed N]\n\n"
            "For every clean photo in DIR (.png/.jpg, sorted) and every selected degradation, writes\n"
            "ROOT/{train,val}/<degradation>/{GT,LQ}/NNNN.png (GT = the photo, LQ = the degraded photo) and the\n"
            "caption files ROOT/daclip_{train,val}.csv (tab-separated: filepath, \"<caption>: <degradation>\").\n"
            "--captions: TSV \"filename<TAB>caption\" (a caption must not contain \": \"); photos without one get a\n"
            "template caption from the file name and colours. --val-frac: share of photos for val (seeded).\n"
            "--types: comma-separated names among motion-blurry, hazy, jpeg-compressed, low-light, noisy,\n"
            "raindrop, rainy, shadowed, snowy, uncompleted (default all).\n");
}

static void on_progress(void *ctx, int64_t done, int64_t total) {
    Progress *p = ctx;
    if (p->total != total) p->total = total;
    progress_update(p, done, NULL);
}

static int parse_types(const char *s, int types[DEGRADE_N]) {
    memset(types, 0, sizeof(int) * DEGRADE_N);
    if (!strcmp(s, "all")) {
        for (int t = 0; t < DEGRADE_N; t++) types[t] = 1;
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int t = degrade_type_from_name(tok);
        if (t < 0) { fprintf(stderr, "make-dataset: unknown degradation '%s'\n", tok); return -1; }
        types[t] = 1;
    }
    return 0;
}

int cmd_make_dataset(int argc, char **argv) {
    MakeDatasetOptions o;
    make_dataset_default_options(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "make-dataset: %s needs a value\n", a); return 2; }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--src")) o.src = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--captions")) o.captions = v;
        else if (!strcmp(a, "--val-frac")) {
            o.val_frac = strtod(v, &end);
            if (*end) { fprintf(stderr, "make-dataset: bad --val-frac '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--seed")) {
            o.seed = strtoull(v, &end, 10);
            if (*end) { fprintf(stderr, "make-dataset: bad --seed '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--types")) {
            if (parse_types(v, o.types)) return 2;
        } else { fprintf(stderr, "make-dataset: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    if (!o.src || !o.out) { usage(stderr); return 2; }
    if (o.types[DEG_UNCOMPLETED]) {   /* say which inpainting masks are used: they change the dataset */
        char masks[4400];
        if (degrade_mask_source(masks, sizeof masks)) { fprintf(stderr, "make-dataset: %s\n", data_error()); return 1; }
        fprintf(stderr, "make-dataset: %s\n", masks);
    }
    Progress p;
    progress_begin(&p, "make-dataset", 0, "pair");
    o.progress = on_progress;
    o.progress_ctx = &p;
    int rc = make_dataset(&o);
    progress_end(&p);
    if (rc) { fprintf(stderr, "make-dataset: %s\n", data_error()); return 1; }
    printf("wrote %s/{train,val} and %s/daclip_{train,val}.csv\n", o.out, o.out);
    return 0;
}
