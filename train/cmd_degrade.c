/* daclip degrade: applies the DA-CLIP degradations (data/degrade.h) to an image or a folder of images, and draws
 * the labelled contact sheet of docs/degradations.png. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data/dataset.h"
#include "data/degrade.h"
#include "data/image_io.h"
#include "data/resize.h"
#include "data/rng_pcg.h"
#include "train/commands.h"
#include "train/draw.h"
#include "train/options.h"
#include "train/progress.h"

#define TYPE_ALL (-2)
#define TYPE_MIXED (-3)

static const char usage_head[] =
    "usage: daclip degrade --type NAME|all|mixed [options] IN OUT\n"
    "       daclip degrade --sheet [--seed N] [--size PX] PHOTO OUT.png\n"
    "       daclip degrade --list\n\n"
    "Applies the DA-CLIP degradations to IN (a PNG/JPEG file or a folder of them) and writes PNGs.\n"
    "  one type, file IN:   OUT is the output file (.png or .jpg)\n"
    "  one type, folder IN: OUT/<name>.png\n"
    "  all / mixed:         OUT/<degradation>/<name>.png (mixed: OUT/mixed/; prints file,types CSV)\n"
    "  (for a training set in the official LQ/GT layout with captions, use 'daclip make-dataset')\n\n"
    "types: motion-blurry hazy jpeg-compressed low-light noisy raindrop rainy shadowed snowy\n"
    "       uncompleted, or all (each of the ten), or mixed (a random chain of 2-3 per image)\n";

/* ---- file helpers ---------------------------------------------------------------------------------------- */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *q = buf + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *q = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    return 0;
}

/* "photo.jpg" -> "photo.png" into out. */
static void png_name(const char *name, char *out, size_t n) {
    const char *slash = strrchr(name, '/');
    if (slash) name = slash + 1;
    const char *dot = strrchr(name, '.');
    int len = dot ? (int)(dot - name) : (int)strlen(name);
    snprintf(out, n, "%.*s.png", len, name);
}

/* ---- labelled contact sheet -------------------------------------------------------------------------------- */

static void paste(Image *dst, const Image *src, int x0, int y0) {
    for (int y = 0; y < src->h && y0 + y < dst->h; y++)
        for (int x = 0; x < src->w && x0 + x < dst->w; x++)
            memcpy(image_at(dst, x0 + x, y0 + y), image_at(src, x, y), (size_t)src->c * sizeof(float));
}

/* The clean photo cut to its centre square and area-resized to size×size (DA-CLIP sees 256×256 patches). */
static int square_tile(const Image *photo, int size, Image *tile) {
    int side = photo->w < photo->h ? photo->w : photo->h;
    int x0 = (photo->w - side) / 2, y0 = (photo->h - side) / 2;
    Image sq;
    if (image_alloc(&sq, side, side, 3)) return -1;
    for (int y = 0; y < side; y++)
        memcpy(image_at(&sq, 0, y), image_at(photo, x0, y0 + y), (size_t)side * 3 * sizeof(float));
    int rc = image_resize(&sq, tile, size, size, RESIZE_AREA);
    image_free(&sq);
    return rc;
}

static int make_sheet(const char *in, const char *out, uint64_t seed, int size) {
    enum { COLS = 4, ROWS = 3, GAP = 6, LABEL = 22 };
    Image photo = {0}, clean = {0}, sheet = {0};
    if (image_load(in, &photo) || square_tile(&photo, size, &clean)) {
        fprintf(stderr, "daclip degrade: %s\n", data_error());
        image_free(&photo);
        return 1;
    }
    image_free(&photo);
    int cw = size + GAP, ch = size + LABEL + GAP;
    if (image_alloc(&sheet, COLS * cw + GAP, ROWS * ch + GAP, 3)) {
        fprintf(stderr, "daclip degrade: %s\n", data_error());
        image_free(&clean);
        return 1;
    }
    for (size_t i = 0; i < (size_t)sheet.w * sheet.h * 3; i++) sheet.px[i] = 0.12f;
    int rc = 0;
    for (int k = 0; k < COLS * ROWS && !rc; k++) {
        Image tile = {0};
        char label[96];
        if (k == 0) {
            rc = image_clone(&tile, &clean);
            snprintf(label, sizeof label, "clean");
        } else if (k <= DEGRADE_N) {
            DegradeParams p;
            degrade_default_params(k - 1, &p);
            rc = degrade_apply(&clean, k - 1, &p, seed, &tile);
            snprintf(label, sizeof label, "%s", degrade_name(k - 1));
        } else {
            int types[3], nt = 0;
            rc = degrade_mixed(&clean, seed, &tile, types, &nt);
            int len = snprintf(label, sizeof label, "mixed:");
            for (int t = 0; t < nt && !rc; t++)
                len += snprintf(label + len, sizeof label - (size_t)len, "%s%s", t ? "+" : "", degrade_name(types[t]));
        }
        if (rc) {
            fprintf(stderr, "daclip degrade: %s\n", data_error());
            break;
        }
        int x = GAP + (k % COLS) * cw, y = GAP + (k / COLS) * ch;
        int scale = (int)strlen(label) * 12 <= size ? 2 : 1;   /* long labels (mixed chains) in small print */
        draw_text(&sheet, x + 2, y + 4 + (2 - scale) * 4, label, scale, 0.95f);
        paste(&sheet, &tile, x, y + LABEL);
        image_free(&tile);
    }
    if (!rc && image_save(out, &sheet)) {
        fprintf(stderr, "daclip degrade: %s\n", data_error());
        rc = 1;
    }
    image_free(&sheet);
    image_free(&clean);
    return rc ? 1 : 0;
}

/* ---- batch degradation ------------------------------------------------------------------------------------ */

typedef struct {
    int type;                  /* 0..9, TYPE_ALL or TYPE_MIXED */
    uint64_t seed;
    int have_params;           /* --severity or --param given: fixed parameters */
    DegradeParams params[DEGRADE_N];
} Job;

/* Degrades one clean image with one type (or a mixed chain) and writes it to out_path. */
static int process_one(const Job *job, const Image *clean, int type, uint64_t seed, const char *out_path,
                       const char *name) {
    Image lq;
    int types[3], nt = 0, rc;
    if (type == TYPE_MIXED) rc = degrade_mixed(clean, seed, &lq, types, &nt);
    else rc = degrade_apply(clean, type, job->have_params ? &job->params[type] : NULL, seed, &lq);
    if (rc) {
        fprintf(stderr, "daclip degrade: %s: %s\n", name, data_error());
        return -1;
    }
    rc = image_save(out_path, &lq);
    if (rc) fprintf(stderr, "daclip degrade: %s\n", data_error());
    image_free(&lq);
    if (!rc && type == TYPE_MIXED) {
        printf("%s", out_path);
        for (int t = 0; t < nt; t++) printf("%c%s", t ? '+' : ',', degrade_name(types[t]));
        printf("\n");
    }
    return rc;
}

/* dst = a/b (or a alone when b is NULL); -1 if it does not fit. */
static int join_path(char *dst, size_t n, const char *a, const char *b) {
    int k = b ? snprintf(dst, n, "%s/%s", a, b) : snprintf(dst, n, "%s", a);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* Output path for (type, file name); creates the folders when `create`. single_out: OUT is the file itself. */
static int out_path(const Job *job, const char *out, int single_out, int type, const char *name, char *lq, size_t n,
                    int create) {
    char file[1024], dir[4096];
    if (single_out) return join_path(lq, n, out, NULL);
    png_name(name, file, sizeof file);
    int per_type = job->type == TYPE_ALL || job->type == TYPE_MIXED;
    if (join_path(dir, sizeof dir, out, per_type ? (type == TYPE_MIXED ? "mixed" : degrade_name(type)) : NULL))
        return -1;
    return (create && make_dirs(dir)) || join_path(lq, n, dir, file) ? -1 : 0;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int by_png_name(const void *a, const void *b) {
    char x[1024], y[1024];
    png_name(*(char *const *)a, x, sizeof x);
    png_name(*(char *const *)b, y, sizeof y);
    return strcmp(x, y);
}

/* Outputs must never overwrite inputs or each other: OUT may not be IN itself, and two inputs may not map to
 * one output name (a.jpg and a.png both give a.png). 0, or 1 after naming the problem. */
static int check_outputs(const Job *job, const char *in, int in_is_dir, const char *out, int single_out,
                         char **files, int n) {
    if (same_file(in, out)) {
        fprintf(stderr, "daclip degrade: %s: the output %s is the input itself; choose another %s\n", out,
                in_is_dir ? "folder" : "file", in_is_dir ? "folder" : "file name");
        return 1;
    }
    int n_types = job->type == TYPE_ALL ? DEGRADE_N : 1;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < n_types; t++) {
            char lq[4096];
            int type = job->type == TYPE_ALL ? t : job->type;
            if (!out_path(job, out, single_out, type, files[i], lq, sizeof lq, 0) && same_file(files[i], lq)) {
                fprintf(stderr, "daclip degrade: %s: the output would overwrite this input; choose another output\n",
                        files[i]);
                return 1;
            }
        }
    if (n < 2) return 0;
    char **sorted = malloc(sizeof(char *) * (size_t)n);
    if (!sorted) {
        fprintf(stderr, "daclip degrade: out of memory\n");
        return 1;
    }
    memcpy(sorted, files, sizeof(char *) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(char *), by_png_name);
    int clashes = 0;
    for (int i = 1; i < n; i++)
        if (!by_png_name(&sorted[i - 1], &sorted[i])) {
            char name[1024];
            png_name(sorted[i], name, sizeof name);
            fprintf(stderr, "daclip degrade: %s and %s would both be written as %s\n", sorted[i - 1], sorted[i], name);
            clashes++;
        }
    free(sorted);
    if (clashes) fprintf(stderr, "daclip degrade: nothing written: rename the inputs so that their names differ\n");
    return clashes ? 1 : 0;
}

static int run_batch(const Job *job, const char *in, const char *out, int quiet) {
    int n_files = 1, in_is_dir = is_dir(in);
    char **paths = NULL, *single[1] = {(char *)in};
    if (in_is_dir) {
        if (dataset_list_images(in, &paths, &n_files)) {
            fprintf(stderr, "daclip degrade: %s\n", data_error());
            return 1;
        }
        if (!n_files) {
            fprintf(stderr, "daclip degrade: %s: no .png/.jpg/.jpeg images found\n", in);
            dataset_free_list(paths, n_files);
            return 1;
        }
    }
    char **files = in_is_dir ? paths : single;
    int n_types = job->type == TYPE_ALL ? DEGRADE_N : 1;
    int single_out = !in_is_dir && job->type >= 0 && !is_dir(out);
    if (check_outputs(job, in, in_is_dir, out, single_out, files, n_files)) {
        dataset_free_list(paths, n_files);
        return 1;
    }
    Progress prog;
    if (!quiet) progress_begin(&prog, "degrade", (int64_t)n_files * n_types, "img");
    int failed = 0;
    for (int i = 0; i < n_files; i++) {
        Image clean;
        if (image_load(files[i], &clean)) {
            fprintf(stderr, "daclip degrade: %s\n", data_error());
            failed += n_types;
            continue;
        }
        uint64_t s = job->seed ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);
        uint64_t img_seed = pcg_splitmix64(&s);
        for (int t = 0; t < n_types; t++) {
            int type = job->type == TYPE_ALL ? t : job->type;
            char lq[4096];
            if (out_path(job, out, single_out, type, files[i], lq, sizeof lq, 1)) {
                fprintf(stderr, "daclip degrade: cannot create the output path for %s under %s\n", files[i], out);
                failed++;
            } else if (process_one(job, &clean, type, img_seed + (uint64_t)t, lq, files[i])) {
                failed++;
            }
            if (!quiet) progress_update(&prog, (int64_t)i * n_types + t + 1, "%d failed", failed);
        }
        image_free(&clean);
    }
    if (!quiet) progress_end(&prog);
    if (in_is_dir) dataset_free_list(paths, n_files);
    if (failed) fprintf(stderr, "daclip degrade: %d output(s) failed\n", failed);
    return failed ? 1 : 0;
}

/* The shortest decimal that reads back as exactly v, so that every number --list prints is accepted by --param
 * (a range end printed with %g, e.g. 0.04 for the float 0.03999999910593033, falls outside the range). */
static const char *shortest(double v, char *buf, size_t n) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static void list_params(void) {
    int n;
    const DegradeParamInfo *t = degrade_param_table(&n);
    printf("key,degradation,min,max,default\n");
    for (int i = 0; i < n; i++) {
        char lo[32], hi[32], def[32];
        printf("%s,%s,%s,%s,%s\n", t[i].key, degrade_name(t[i].type), shortest(t[i].min, lo, sizeof lo),
               shortest(t[i].max, hi, sizeof hi), shortest(t[i].def, def, sizeof def));
    }
}

/* Names the inpainting masks this run uses on stderr (they change the output); 0, or 1 when they are missing. */
static int report_masks(void) {
    char masks[4400];
    if (degrade_mask_source(masks, sizeof masks)) {
        fprintf(stderr, "daclip degrade: %s\n", data_error());
        return 1;
    }
    fprintf(stderr, "daclip degrade: %s\n", masks);
    return 0;
}

/* --param KEY=NUMBER, checked like any number on the command line. */
static int parse_param(const char *arg, char *key, size_t key_n, double *value) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= key_n)
        return opts_fail("degrade", "--param", "expects KEY=NUMBER, got '%s'", arg);
    snprintf(key, key_n, "%.*s", (int)(eq - arg), arg);
    const OptSpec number = {"--param", OPT_DOUBLE, value, 0, 0, "KEY=VAL", NULL};
    return opts_store("degrade", &number, eq + 1);
}

int cmd_degrade(int argc, char **argv) {
    Job job;
    memset(&job, 0, sizeof job);
    const char *type = NULL, *mask_dir = NULL;
    bool sheet = false, list = false, quiet = false;
    int size = 256;
    double severity = -1.0;   /* < 0: not given */
    OptList param_args = {0};
    const OptSpec specs[] = {
        {"--type", OPT_STR, &type, 0, 0, "NAME", "a type above, all or mixed (required unless --sheet or --list)"},
        {"--seed", OPT_U64, &job.seed, 0, 0, "N", "base seed (default 0); image i uses a seed derived from (N, i)"},
        {"--severity", OPT_DOUBLE, &severity, 0, 1, "S",
         "0 = mildest .. 1 = harshest end of every parameter range; without it and\n"
         "without --param, parameters are drawn at random within their ranges per image"},
        {"--param", OPT_LIST, &param_args, 0, 0, "KEY=VAL",
         "set one parameter, e.g. jpeg_quality=10 noise_sigma=0.196; starts from\n"
         "the defaults (or --severity); see --list"},
        {"--mask-dir", OPT_STR, &mask_dir, 0, 0, "DIR",
         "official inpainting masks (default: the project's data/assets/inpainting_masks;\n"
         "'' = synthetic brush strokes); the masks used are named on stderr"},
        {"--sheet", OPT_FLAG, &sheet, 0, 0, NULL,
         "contact sheet: the clean photo (centre square at --size) and all ten\n"
         "degradations plus one mixed chain, labelled, in a 4x3 grid"},
        {"--size", OPT_INT, &size, 32, 2048, "PX", "tile side of the contact sheet (default 256)"},
        {"--list", OPT_FLAG, &list, 0, 0, NULL, "print the parameter table as CSV (key,degradation,min,max,default)"},
        {"--quiet", OPT_FLAG, &quiet, 0, 0, NULL, "no progress bar"},
        {0}};
    char **pos;
    int n_pos;
    int parsed = opts_parse("degrade", usage_head, specs, argc, argv, &pos, &n_pos);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (list) {
        list_params();
        return 0;
    }
    if (n_pos != 2)
        return opts_fail("degrade", NULL, "expected IN and OUT, got %d argument%s; see 'daclip degrade --help'", n_pos,
                         n_pos == 1 ? "" : "s");
    job.type = -1;
    if (type) {
        job.type = !strcmp(type, "all") ? TYPE_ALL : !strcmp(type, "mixed") ? TYPE_MIXED : degrade_type_from_name(type);
        if (job.type == -1) return opts_fail("degrade", "--type", "unknown type '%s' (see 'daclip degrade --help')", type);
    }
    if (!sheet && job.type == -1) return opts_fail("degrade", "--type", "required (see 'daclip degrade --help')");
    if (!sheet && (severity >= 0.0 || param_args.n)) {
        char keys[OPT_LIST_MAX][64];
        double values[OPT_LIST_MAX];
        for (int k = 0; k < param_args.n; k++)
            if (parse_param(param_args.v[k], keys[k], sizeof keys[k], &values[k])) return OPTS_ERROR;
        job.have_params = 1;
        for (int t = 0; t < DEGRADE_N; t++) {
            if (severity >= 0.0) degrade_severity_params(t, (float)severity, &job.params[t]);
            else degrade_default_params(t, &job.params[t]);
            for (int k = 0; k < param_args.n; k++)
                if (degrade_param_set(&job.params[t], keys[k], values[k])) {
                    const char *msg = data_error();   /* "degrade: <problem>" */
                    return opts_fail("degrade", "--param", "%s", strncmp(msg, "degrade: ", 9) ? msg : msg + 9);
                }
        }
        if (job.type == TYPE_MIXED)
            fprintf(stderr, "daclip degrade: note: mixed mode draws its own random parameters; --severity/--param are ignored\n");
    }
    if (mask_dir) degrade_set_mask_dir(mask_dir);
    if ((sheet || job.type == TYPE_ALL || job.type == TYPE_MIXED || job.type == DEG_UNCOMPLETED) && report_masks()) return 1;
    if (sheet && same_file(pos[0], pos[1])) {
        fprintf(stderr, "daclip degrade: %s: the contact sheet would overwrite the photo; choose another file name\n", pos[1]);
        return 1;
    }
    if (sheet) return make_sheet(pos[0], pos[1], job.seed, size);
    return run_batch(&job, pos[0], pos[1], quiet);
}
