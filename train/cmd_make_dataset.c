/* daclip make-dataset: clean photos -> DA-CLIP training folders (official layout) with captions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/dataset.h"
#include "tensor/tensor.h"
#include "train/commands.h"
#include "train/options.h"
#include "train/progress.h"

static const char usage_head[] =
    "usage: daclip make-dataset --src DIR --out ROOT [--captions FILE] [--val-frac 0.1]\n"
    "                           [--types all|a,b,...] [--seed N]\n\n"
    "For every clean photo in DIR (.png/.jpg, sorted) and every selected degradation, writes\n"
    "ROOT/{train,val}/<degradation>/{GT,LQ}/NNNN.png (GT = the photo, LQ = the degraded photo) and the\n"
    "caption files ROOT/daclip_{train,val}.csv (tab-separated: filepath, \"<caption>: <degradation>\").\n"
    "Photos without a caption in --captions get a template caption from the file name and colours.\n"
    "Photos are worked on in parallel (DACLIP_THREADS); the dataset is the same for any thread count.\n";

static void on_progress(void *ctx, int64_t done, int64_t total) {
    Progress *p = ctx;
    if (p->total != total) p->total = total;
    progress_update(p, done, NULL);
}

/* --types: "all" or a comma-separated list of degradation names. */
static int parse_types(const char *s, int types[DEGRADE_N]) {
    memset(types, 0, sizeof(int) * DEGRADE_N);
    if (!strcmp(s, "all")) {
        for (int t = 0; t < DEGRADE_N; t++) types[t] = 1;
        return 0;
    }
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return opts_fail("make-dataset", "--types", "too long");
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int t = degrade_type_from_name(tok);
        if (t < 0) return opts_fail("make-dataset", "--types", "unknown degradation '%s'", tok);
        types[t] = 1;
        n++;
    }
    return n ? 0 : opts_fail("make-dataset", "--types", "no degradation named");
}

int cmd_make_dataset(int argc, char **argv) {
    MakeDatasetOptions o;
    make_dataset_default_options(&o);
    const char *types = "all";
    const OptSpec specs[] = {
        {"--src", OPT_STR | OPT_REQUIRED, &o.src, 0, 0, "DIR", "the clean photos (.png/.jpg)"},
        {"--out", OPT_STR | OPT_REQUIRED, &o.out, 0, 0, "ROOT", "the dataset folder to write"},
        {"--captions", OPT_STR, &o.captions, 0, 0, "FILE",
         "TSV \"filename<TAB>caption\" (a caption must not contain \": \")"},
        {"--val-frac", OPT_DOUBLE, &o.val_frac, 0, 1, "F", "share of photos for val, in [0, 1) (seeded; default 0.1)"},
        {"--types", OPT_STR, &types, 0, 0, "LIST",
         "all (default) or comma-separated names among motion-blurry, hazy,\n"
         "jpeg-compressed, low-light, noisy, raindrop, rainy, shadowed, snowy, uncompleted"},
        {"--seed", OPT_U64, &o.seed, 0, 0, "N", "seed of the split and of the degradations (default 0)"},
        {"--patches", OPT_INT, &o.patches, 0, 10000, "N",
         "cut N random crops of each photo, each its own sample (default 0:\nthe whole photo); the split is by photo"},
        {"--patch-size", OPT_INT, &o.patch_size, 8, 8192, "PX", "side of those crops (default 256)"},
        {"--downscale", OPT_DOUBLE, &o.downscale, 1, 64, "F",
         "shrink each photo by F first (area filter; >= 2 hides JPEG\nartefacts of the sources; default 1)"},
        {0}};
    int parsed = opts_parse("make-dataset", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (o.val_frac >= 1) return opts_fail("make-dataset", "--val-frac", "must be below 1 (at least one photo trains)");
    if (parse_types(types, o.types)) return OPTS_ERROR;
    if (o.types[DEG_UNCOMPLETED]) {   /* say which inpainting masks are used: they change the dataset */
        char masks[4400];
        if (degrade_mask_source(masks, sizeof masks)) { fprintf(stderr, "daclip make-dataset: %s\n", data_error()); return 1; }
        fprintf(stderr, "daclip make-dataset: %s\n", masks);
    }
    t_init();
    o.threads = t_threads();   /* DACLIP_THREADS, else OMP_NUM_THREADS, else every core */
    Progress p;
    progress_begin(&p, "make-dataset", 0, "pair");
    o.progress = on_progress;
    o.progress_ctx = &p;
    int rc = make_dataset(&o);
    progress_end(&p);
    if (rc) { fprintf(stderr, "daclip make-dataset: %s\n", data_error()); return 1; }
    printf("wrote %s/{train,val} and %s/daclip_{train,val}.csv\n", o.out, o.out);
    return 0;
}
