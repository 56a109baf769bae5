/* daclip eval-ir: restore every LQ image of a test set and report PSNR/SSIM as the official evaluation
 * (reference §8), per degradation type and overall, beside the degraded input's own scores. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/image_io.h"
#include "data/metrics.h"
#include "train/commands.h"
#include "train/compare_grid.h"
#include "train/eval_html.h"
#include "train/options.h"
#include "train/paths.h"
#include "train/restore_pipeline.h"

static const char usage_head[] =
    "usage: daclip eval-ir --daclip DACLIP.safetensors --model UNET.safetensors --data ROOT --out DIR\n"
    "                      [--limit N] [--steps N] [--grid-per-type 3]\n\n"
    "Evaluates an IR-SDE restoration model on a test set laid out as ROOT/<degradation>/{LQ,GT} (a split folder\n"
    "written by make-dataset, e.g. ROOT/val, or an official test set). Every LQ image is paired with its GT (by\n"
    "sorted order; by file name when the counts differ), restored (DA-CLIP on its CLIP view, 100-step posterior\n"
    "sampling) and written to DIR/<degradation>/<name>.png; images already restored there are not restored\n"
    "again (the run resumes). Prints PSNR/SSIM (RGB and Y, --crop-border px removed, as the official test.py) of\n"
    "the restored images and of the degraded inputs, per type and overall, and writes them to DIR/metrics.csv\n"
    "a comparison picture (LQ | restored | GT, with the scores) to DIR/grid.png, and a page with the table and\n"
    "every image side by side to DIR/index.html. Bad pairs (count or size\n"
    "mismatch, unreadable images) are reported and skipped; the exit status is then 1.\n";

typedef struct {
    int type;               /* index into the type folder names */
    char *lq, *gt, *out;
    bool bad;               /* reported and skipped */
    bool done;              /* the restored image was already there */
    bool scored;
    Metrics m_lq, m_out;
} Item;

typedef struct {
    char **types;           /* sub-folder names with an LQ folder, sorted */
    int ntypes;
    Item *items;            /* grouped by type */
    int n, cap;
    int problems;           /* items or folders reported as bad */
} EvalSet;

static void set_free(EvalSet *s) {
    for (int i = 0; i < s->n; i++) free(s->items[i].lq), free(s->items[i].gt), free(s->items[i].out);
    free(s->items);
    dataset_free_list(s->types, s->ntypes);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join3(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s%s", a, b, c[0] ? "/" : "", c);
    return p;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sub-folders of root that hold an LQ folder. */
static int scan_types(const char *root, EvalSet *s) {
    DIR *d = opendir(root);
    if (!d) {
        fprintf(stderr, "daclip eval-ir: cannot open %s\n", root);
        return -1;
    }
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *lq = join3(root, e->d_name, "LQ");
        bool ok = lq && is_dir(lq);
        free(lq);
        if (!ok) continue;
        if (s->ntypes == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(s->types, sizeof *grown * (size_t)cap);
            if (!grown) break;
            s->types = grown;
        }
        if (!(s->types[s->ntypes] = strdup(e->d_name))) break;
        s->ntypes++;
    }
    closedir(d);
    if (s->ntypes == 0) {
        char *val = join3(root, "val", "");
        fprintf(stderr, "daclip eval-ir: %s: no <degradation>/LQ folders%s\n", root,
                val && is_dir(val) ? " (a make-dataset root? use --data ROOT/val)" : "");
        free(val);
        return -1;
    }
    qsort(s->types, (size_t)s->ntypes, sizeof *s->types, name_cmp);
    return 0;
}

static int add_item(EvalSet *s, int type, const char *lq, const char *gt, const char *out_dir) {
    if (s->n == s->cap) {
        int c = s->cap ? 2 * s->cap : 64;
        Item *grown = realloc(s->items, sizeof *grown * (size_t)c);
        if (!grown) return -1;
        s->items = grown, s->cap = c;
    }
    char stem[1024], file[1100];
    restore_stem(lq, stem, sizeof stem);
    snprintf(file, sizeof file, "%s.png", stem);
    Item it = {.type = type, .lq = strdup(lq), .gt = strdup(gt), .out = join3(out_dir, s->types[type], file)};
    if (!it.lq || !it.gt || !it.out) {
        free(it.lq), free(it.gt), free(it.out);
        return -1;
    }
    for (int i = s->n - 1; i >= 0 && s->items[i].type == type; i--)
        if (!strcmp(s->items[i].out, it.out)) {   /* x.png and x.jpg: one restored x.png */
            fprintf(stderr, "daclip eval-ir: %s: another LQ image has the name %s; skipped\n", lq, stem);
            free(it.lq), free(it.gt), free(it.out);
            s->problems++;
            return 0;
        }
    s->items[s->n++] = it;
    return 0;
}

/* Pairs one type's LQ and GT images (sorted order; by stem when the counts differ) into items, at most limit. */
static int pair_type(EvalSet *s, const char *root, int type, int limit, const char *out_dir) {
    const char *name = s->types[type];
    char *lqd = join3(root, name, "LQ"), *gtd = join3(root, name, "GT");
    char **lq = NULL, **gt = NULL;
    int nl = 0, ng = 0, rc = 0, added = 0;
    if (!lqd || !gtd || dataset_list_images(lqd, &lq, &nl)) {
        fprintf(stderr, "daclip eval-ir: %s\n", lqd ? data_error() : "out of memory");
        s->problems++;
    } else if (!is_dir(gtd) || dataset_list_images(gtd, &gt, &ng)) {
        fprintf(stderr, "daclip eval-ir: %s: no GT folder beside LQ; type skipped\n", gtd);
        s->problems++;
    } else if (nl == ng) {
        for (int i = 0; i < nl && added < limit && !rc; i++, added++) rc = add_item(s, type, lq[i], gt[i], out_dir);
    } else {
        fprintf(stderr, "daclip eval-ir: %s: %d LQ but %d GT images; pairing by file name\n", name, nl, ng);
        s->problems++;
        int unpaired = 0;
        for (int i = 0; i < nl && !rc; i++) {
            char a[1024], b[1024];
            restore_stem(lq[i], a, sizeof a);
            int j = 0;
            for (; j < ng; j++) {
                restore_stem(gt[j], b, sizeof b);
                if (!strcmp(a, b)) break;
            }
            if (j == ng) {
                fprintf(stderr, "daclip eval-ir: %s: no GT image named %s; skipped\n", lq[i], a);
                unpaired++;
            } else if (added < limit) {
                rc = add_item(s, type, lq[i], gt[j], out_dir);
                added++;
            }
        }
        if (nl - unpaired < ng) fprintf(stderr, "daclip eval-ir: %s: %d GT images without an LQ\n", name, ng - (nl - unpaired));
    }
    dataset_free_list(lq, nl);
    dataset_free_list(gt, ng);
    free(lqd), free(gtd);
    return rc;
}

/* Marks items whose GT is unreadable or of another size than the LQ, and those already restored. */
static void check_items(EvalSet *s, const RestoreEmbedding *emb) {
    for (int i = 0; i < s->n; i++) {
        Item *it = &s->items[i];
        if (!emb[i].ok) {
            it->bad = true, s->problems++;   /* reported by restorer_embed_files */
            continue;
        }
        Image gt = {0}, out = {0};
        if (image_load(it->gt, &gt)) {
            fprintf(stderr, "daclip eval-ir: %s; %s skipped\n", data_error(), it->lq);
            it->bad = true, s->problems++;
        } else if (gt.w != emb[i].w || gt.h != emb[i].h) {
            fprintf(stderr, "daclip eval-ir: %s is %dx%d but its GT %s is %dx%d; skipped\n", it->lq, emb[i].w, emb[i].h,
                    it->gt, gt.w, gt.h);
            it->bad = true, s->problems++;
        } else if (access(it->out, F_OK) == 0 && image_load(it->out, &out) == 0 && out.w == gt.w && out.h == gt.h) {
            it->done = true;
        }
        image_free(&gt), image_free(&out);
    }
}

/* Restores the items idx[0..k) and writes them. Returns the failures, -1 on a model error. */
static int restore_items(Restorer *r, EvalSet *s, const RestoreEmbedding *emb, const int *idx, int k,
                         const RestoreOptions *o) {
    Image lq[RESTORER_GROUP_MAX] = {{0}}, res[RESTORER_GROUP_MAX] = {{0}};
    const RestoreEmbedding *e[RESTORER_GROUP_MAX];
    int at[RESTORER_GROUP_MAX], m = 0, failures = 0;
    char label[300], err[2048] = "", stem[256];
    for (int j = 0; j < k; j++) {
        Item *it = &s->items[idx[j]];
        if (image_load(it->lq, &lq[m])) {
            fprintf(stderr, "daclip eval-ir: %s\n", data_error());
            it->bad = true, s->problems++, failures++;
            continue;
        }
        e[m] = &emb[idx[j]], at[m++] = idx[j];
    }
    if (m == 0) return failures;
    restore_stem(s->items[at[0]].lq, stem, sizeof stem);
    snprintf(label, sizeof label, "%.60s/%.100s%s", s->types[s->items[at[0]].type], stem, m > 1 ? " +" : "");
    if (m > 1) snprintf(label + strlen(label), sizeof label - strlen(label), "%d", m - 1);
    int rc = restorer_run(r, lq, e, m, o, label, res, err, sizeof err);
    for (int j = 0; j < m; j++) {
        Item *it = &s->items[at[j]];
        if (!rc && restore_save_atomic(it->out, &res[j])) {
            fprintf(stderr, "daclip eval-ir: %s\n", data_error());
            it->bad = true, s->problems++, failures++;
        }
        image_free(&lq[j]), image_free(&res[j]);
    }
    if (rc) {
        fprintf(stderr, "daclip eval-ir: %s\n", err);
        return -1;
    }
    return failures;
}

/* ---- scores --------------------------------------------------------------------------------------------------- */

typedef struct {
    int n, correct, classified;
    double lq[4], out[4];
} Sums;

static void add_sums(Sums *s, const Item *it) {
    const double a[4] = {it->m_lq.psnr, it->m_lq.ssim, it->m_lq.psnr_y, it->m_lq.ssim_y};
    const double b[4] = {it->m_out.psnr, it->m_out.ssim, it->m_out.psnr_y, it->m_out.ssim_y};
    for (int k = 0; k < 4; k++) s->lq[k] += a[k], s->out[k] += b[k];
    s->n++;
}

/* Scores one item; keeps its thumbnails in *row when row != NULL. 0 or -1 (reported). */
static int score_item(Item *it, int crop, CompareRow *row) {
    Image lq = {0}, gt = {0}, out = {0};
    int rc = -1;
    if (image_load(it->lq, &lq) || image_load(it->gt, &gt) || image_load(it->out, &out)) {
        fprintf(stderr, "daclip eval-ir: %s\n", data_error());
    } else if (metrics_compute(&gt, &lq, crop, &it->m_lq) || metrics_compute(&gt, &out, crop, &it->m_out)) {
        fprintf(stderr, "daclip eval-ir: %s: %s\n", it->lq, data_error());
    } else if (row && (compare_grid_thumbnail(&lq, COMPARE_GRID_CELL, &row->lq) ||
                       compare_grid_thumbnail(&out, COMPARE_GRID_CELL, &row->restored) ||
                       compare_grid_thumbnail(&gt, COMPARE_GRID_CELL, &row->gt))) {
        fprintf(stderr, "daclip eval-ir: grid: %s\n", data_error());
        compare_row_free(row);
    } else {
        it->scored = true;
        rc = 0;
    }
    image_free(&lq), image_free(&gt), image_free(&out);
    return rc;
}

static void print_row(const char *name, const Sums *s, bool daclip) {
    if (s->n == 0) {
        printf("%-18s %5d  (nothing evaluated)\n", name, 0);
        return;
    }
    char acc[16] = "-";
    if (daclip && s->classified) snprintf(acc, sizeof acc, "%.1f%%", 100.0 * s->correct / s->classified);
    printf("%-18s %5d  %8.3f %7.4f %8.3f %7.4f   %8.3f %7.4f %8.3f %7.4f  %7s\n", name, s->n, s->lq[0] / s->n,
           s->lq[1] / s->n, s->lq[2] / s->n, s->lq[3] / s->n, s->out[0] / s->n, s->out[1] / s->n, s->out[2] / s->n,
           s->out[3] / s->n, acc);
}

static void csv_row(FILE *f, const char *type, const char *image, const char *restored, const char *pred, double prob,
                    const double lq[4], const double out[4], int n) {
    fprintf(f, "%s,\"%s\",\"%s\",%s,%.4f", type, image, restored, pred, prob);
    for (int k = 0; k < 4; k++) fprintf(f, ",%.6f", lq[k] / n);
    for (int k = 0; k < 4; k++) fprintf(f, ",%.6f", out[k] / n);
    fprintf(f, ",%d\n", n);
}

static int write_csv(const char *path, const EvalSet *s, const RestoreEmbedding *emb, const Sums *per, const Sums *all) {
    char tmp[4200];
    FILE *f = snprintf(tmp, sizeof tmp, "%s.tmp", path) < (int)sizeof tmp ? fopen(tmp, "w") : NULL;
    if (!f) {
        fprintf(stderr, "daclip eval-ir: cannot create %s\n", tmp);
        return -1;
    }
    fprintf(f, "type,image,restored,predicted,probability,lq_psnr,lq_ssim,lq_psnr_y,lq_ssim_y,psnr,ssim,psnr_y,ssim_y,"
               "count\n");
    for (int i = 0; i < s->n; i++) {
        const Item *it = &s->items[i];
        if (!it->scored) continue;
        const double a[4] = {it->m_lq.psnr, it->m_lq.ssim, it->m_lq.psnr_y, it->m_lq.ssim_y};
        const double b[4] = {it->m_out.psnr, it->m_out.ssim, it->m_out.psnr_y, it->m_out.ssim_y};
        csv_row(f, s->types[it->type], it->lq, it->out, emb[i].type >= 0 ? degrade_name(emb[i].type) : "",
                emb[i].type >= 0 ? emb[i].prob : 0.0, a, b, 1);
    }
    for (int t = 0; t < s->ntypes; t++)
        if (per[t].n) csv_row(f, s->types[t], "mean", "", "", 0.0, per[t].lq, per[t].out, per[t].n);
    if (all->n) csv_row(f, "all", "mean", "", "", 0.0, all->lq, all->out, all->n);
    bool bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        fprintf(stderr, "daclip eval-ir: write error on %s\n", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void grid_text(CompareRow *row, const char *type, const Item *it, const RestoreEmbedding *e) {
    char stem[64];
    restore_stem(it->lq, stem, sizeof stem);
    const Metrics *m[2] = {&it->m_lq, &it->m_out};
    snprintf(row->text[0][0], sizeof row->text[0][0], "%.24s %.20s", type, stem);
    if (e->type >= 0) snprintf(row->text[1][0], sizeof row->text[1][0], "DA-CLIP: %s %.2f", degrade_name(e->type), e->prob);
    else snprintf(row->text[1][0], sizeof row->text[1][0], "RESTORED");
    for (int c = 0; c < 2; c++) {
        snprintf(row->text[c][1], sizeof row->text[c][1], "PSNR %.2f SSIM %.3f", m[c]->psnr, m[c]->ssim);
        snprintf(row->text[c][2], sizeof row->text[c][2], "Y: PSNR %.2f SSIM %.3f", m[c]->psnr_y, m[c]->ssim_y);
    }
    snprintf(row->text[2][0], sizeof row->text[2][0], "GROUND TRUTH");
}

static EvalHtmlType html_type(const char *name, const Sums *s, bool daclip) {
    double n = s->n ? s->n : 1;
    return (EvalHtmlType){name, s->n, s->lq[0] / n, s->lq[1] / n, s->out[0] / n, s->out[1] / n,
                          daclip && s->classified ? (double)s->correct / s->classified : -1.0};
}

/* DIR/index.html: the table and every scored image (eval_html.h). */
static int write_html(const char *out_dir, const char *subtitle, const EvalSet *s, const RestoreEmbedding *emb,
                      const Sums *per, const Sums *all, bool daclip, bool with_grid) {
    EvalHtmlType *types = calloc((size_t)s->ntypes + 1, sizeof *types);
    EvalHtmlImage *images = calloc((size_t)s->n + 1, sizeof *images);
    int nt = 0, ni = 0, rc = -1;
    if (types && images) {
        for (int t = 0; t < s->ntypes; t++)
            if (per[t].n) types[nt++] = html_type(s->types[t], &per[t], daclip);
        types[nt++] = html_type("all", all, daclip);
        for (int i = 0; i < s->n; i++) {
            const Item *it = &s->items[i];
            if (!it->scored) continue;
            images[ni++] = (EvalHtmlImage){s->types[it->type], it->lq, it->out, it->gt,
                                           emb[i].type >= 0 ? degrade_name(emb[i].type) : NULL, emb[i].prob,
                                           it->m_lq.psnr, it->m_lq.ssim, it->m_out.psnr, it->m_out.ssim};
        }
        char path[4200], grid[4200];
        snprintf(path, sizeof path, "%s/index.html", out_dir);
        snprintf(grid, sizeof grid, "%s/grid.png", out_dir);
        rc = eval_html_write(path, "DA-CLIP + IR-SDE restoration", subtitle, types, nt, images, ni,
                             with_grid ? grid : NULL);
        if (!rc) fprintf(stderr, "wrote %s\n", path);
    }
    free(types), free(images);
    return rc;
}

/* Scores every restored item, prints the table, writes metrics.csv, grid.png and index.html. Returns the
 * failures. */
static int report(EvalSet *s, const RestoreEmbedding *emb, const char *out_dir, int crop, int per_type, bool daclip,
                  const char *subtitle) {
    Sums *per = calloc((size_t)s->ntypes, sizeof *per), all = {0};
    CompareRow *rows = calloc((size_t)s->ntypes * (per_type > 0 ? per_type : 1), sizeof *rows);
    int nrows = 0, failures = 0, *in_grid = calloc((size_t)s->ntypes, sizeof(int));
    if (!per || !rows || !in_grid) {
        free(per), free(rows), free(in_grid);
        fprintf(stderr, "daclip eval-ir: out of memory\n");
        return 1;
    }
    for (int i = 0; i < s->n; i++) {
        Item *it = &s->items[i];
        if (it->bad) continue;
        CompareRow *row = in_grid[it->type] < per_type ? &rows[nrows] : NULL;
        if (score_item(it, crop, row)) {
            it->bad = true, s->problems++, failures++;
            continue;
        }
        if (row) grid_text(row, s->types[it->type], it, &emb[i]), nrows++, in_grid[it->type]++;
        add_sums(&per[it->type], it), add_sums(&all, it);
        int truth = degrade_type_from_name(s->types[it->type]);
        if (emb[i].type >= 0 && truth >= 0) {
            per[it->type].classified++, all.classified++;
            if (emb[i].type == truth) per[it->type].correct++, all.correct++;
        }
    }
    printf("%-18s %5s  %-34s   %-34s  %7s\n", "", "", "degraded input (LQ)", "restored", "DA-CLIP");
    printf("%-18s %5s  %8s %7s %8s %7s   %8s %7s %8s %7s  %7s\n", "type", "n", "PSNR", "SSIM", "PSNR_Y", "SSIM_Y", "PSNR",
           "SSIM", "PSNR_Y", "SSIM_Y", "acc");
    for (int t = 0; t < s->ntypes; t++) print_row(s->types[t], &per[t], daclip);
    print_row("all", &all, daclip);
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", out_dir);
    if (write_csv(path, s, emb, per, &all)) failures++;
    else fprintf(stderr, "wrote %s\n", path);
    snprintf(path, sizeof path, "%s/grid.png", out_dir);
    char title[96];
    snprintf(title, sizeof title, "EVAL-IR %d IMAGES  PSNR/SSIM  LQ %.2f/%.3f  RESTORED %.2f/%.3f", all.n,
             all.n ? all.lq[0] / all.n : 0.0, all.n ? all.lq[1] / all.n : 0.0, all.n ? all.out[0] / all.n : 0.0,
             all.n ? all.out[1] / all.n : 0.0);   /* the font has no '>' */
    if (nrows > 0 && compare_grid_write(path, rows, nrows, COMPARE_GRID_CELL, title)) {
        fprintf(stderr, "daclip eval-ir: %s\n", data_error());
        failures++;
    } else if (nrows > 0) {
        fprintf(stderr, "wrote %s\n", path);
    }
    if (write_html(out_dir, subtitle, s, emb, per, &all, daclip, nrows > 0)) failures++;
    for (int r = 0; r < nrows; r++) compare_row_free(&rows[r]);
    free(per), free(rows), free(in_grid);
    return failures;
}

int cmd_eval_ir(int argc, char **argv) {
    const char *daclip = NULL, *model = NULL, *data = NULL, *out = NULL;
    int limit = 0, steps = 0, per_type = 3, crop = METRICS_DEFAULT_CROP, tile = 0;
    uint64_t seed = 0;
    const OptSpec specs[] = {
        {"--daclip", OPT_STR, &daclip, 0, 0, "FILE", "DA-CLIP model (train-daclip); not needed by a --no-daclip U-Net"},
        {"--model", OPT_STR | OPT_REQUIRED, &model, 0, 0, "FILE", "IR-SDE U-Net model (train-ir)"},
        {"--data", OPT_STR | OPT_REQUIRED, &data, 0, 0, "ROOT", "test set: ROOT/<degradation>/{LQ,GT}"},
        {"--out", OPT_STR | OPT_REQUIRED, &out, 0, 0, "DIR", "restored images, metrics.csv and grid.png"},
        {"--limit", OPT_INT, &limit, 0, 1 << 30, "N", "at most N images per type (default: all)"},
        {"--steps", OPT_INT, &steps, 1, 100000, "N", "sampling steps (default: the trained T, 100)"},
        {"--seed", OPT_U64, &seed, 0, 0, "N", "noise seed (default 0)"},
        {"--tile", OPT_INT, &tile, 0, 1 << 20, "PX", "tile edge for large images (default: as restore)"},
        {"--grid-per-type", OPT_INT, &per_type, 0, 100, "N", "images per type in grid.png (default 3)"},
        {"--crop-border", OPT_INT, &crop, 0, 10000, "PX", "pixels removed on each side before scoring (default 4)"},
        {0}};
    int parsed = opts_parse("eval-ir", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    t_init();
    EvalSet s = {0};
    RestoreEmbedding *emb = NULL;
    int *idx = NULL, rc = 1;
    char err[2048] = "";
    Restorer r;
    bool opened = false;
    if (scan_types(data, &s)) goto done;
    for (int t = 0; t < s.ntypes; t++)
        if (pair_type(&s, data, t, limit > 0 ? limit : 1 << 30, out)) {
            fprintf(stderr, "daclip eval-ir: out of memory\n");
            goto done;
        }
    if (s.n == 0) {
        fprintf(stderr, "daclip eval-ir: %s: no LQ/GT pairs to evaluate\n", data);
        goto done;
    }
    for (int t = 0; t < s.ntypes; t++) {
        char *d = join3(out, s.types[t], "");
        if (!d || path_mkdir_p(d)) {
            fprintf(stderr, "daclip eval-ir: cannot create %s\n", d ? d : out);
            free(d);
            goto done;
        }
        free(d);
    }
    if (restorer_open(&r, daclip, model, steps, err, sizeof err)) {
        fprintf(stderr, "daclip eval-ir: %s\n", err);
        goto done;
    }
    opened = true;
    emb = calloc((size_t)s.n, sizeof *emb);
    idx = malloc(sizeof *idx * (size_t)s.n);
    char **lqs = malloc(sizeof *lqs * (size_t)s.n);
    if (!emb || !idx || !lqs) {
        free(lqs);
        goto done;
    }
    for (int i = 0; i < s.n; i++) lqs[i] = s.items[i].lq;
    int unreadable = restorer_embed_files(&r, "eval-ir", lqs, s.n, emb, err, sizeof err);
    free(lqs);
    if (unreadable < 0) {
        fprintf(stderr, "daclip eval-ir: %s\n", err);
        goto done;
    }
    check_items(&s, emb);
    int todo = 0, done_before = 0;
    for (int i = 0; i < s.n; i++) {
        if (!s.items[i].bad && !s.items[i].done) idx[todo++] = i;
        done_before += s.items[i].done;
    }
    fprintf(stderr, "eval-ir: %d pairs in %d types; %d to restore, %d already restored in %s\n", s.n, s.ntypes, todo,
            done_before, out);
    RestoreOptions o = restore_options_default();
    o.seed = seed, o.tile = tile;
    for (int first = 0; first < todo;) {
        int k = restore_group_size(emb, idx, todo, first);
        if (restore_items(&r, &s, emb, idx + first, k, &o) < 0) goto done;
        first += k;
    }
    char subtitle[1200];
    snprintf(subtitle, sizeof subtitle, "%s: %d images; DA-CLIP %.400s, U-Net %.400s; %d sampling steps, seed %llu",
             data, s.n, daclip ? daclip : "(none)", model, steps ? steps : 100, (unsigned long long)seed);
    int report_failures = report(&s, emb, out, crop, per_type, r.has_daclip, subtitle);
    if (s.problems) fprintf(stderr, "daclip eval-ir: %d problems reported above; those images were skipped\n", s.problems);
    rc = s.problems || report_failures ? 1 : 0;
done:
    if (out_close_stdout("eval-ir")) rc = 1;
    for (int i = 0; emb && i < s.n; i++) restore_embedding_free(&emb[i]);
    free(emb), free(idx);
    set_free(&s);
    if (opened) restorer_close(&r);
    t_arena_shutdown();
    return rc;
}
