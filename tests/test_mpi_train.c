/* Data-parallel training over MPI (train/dist.c, docs/distributed.md): `mpirun -np 2` of train-ir,
 * train-daclip and train-clip on tiny models gives, step for step, the losses of one process with the same
 * global batch, and the same final weights, to float tolerance; a 2-rank run stopped half way and resumed by
 * 2 ranks ends where the 1-process run does; validation is reduced across ranks; and killing one rank ends
 * the job within seconds with a non-zero status and a message naming the rank, and so does an error on one
 * rank. The global batches are odd
 * (5), so the two ranks' shards differ in size (2 and 3 rows). Skipped when mpirun is absent or the build has
 * no MPI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/degrade.h"
#include "data/image_io.h"
#include "irsde/unet.h"
#include "tensor/safetensors.h"
#include "tests/util_check.h"
#include "tests/util_tiny_daclip.h"
#include "tests/util_tmpdir.h"
#include "train/dist.h"
#include "train/paths.h"

#define STEPS 20
/* The 2-rank gradients differ from the 1-process ones by float rounding (other GEMM shapes, sums split in
 * two); AdamW divides by sqrt(v), which turns a rounding-level change of a near-zero gradient into a visible
 * change of its step. Measured: up to 3.5e-5 after 20 steps at lr 1e-3 (|w| <= 2.7); the bound, 2e-4 of
 * max(1, max|w|), is 1-3% of the 2e-2 that 20 such steps can move a weight. */
#define WEIGHT_TOL_ADAM 2e-4

static char dir[1024], bin[PATH_MAX], mpirun[PATH_MAX], supp[PATH_MAX], lsan_options[PATH_MAX + 100];
static char ir_root[1100], ir_json[1100], clip_path[1100], daclip_path[1100], train_csv[1100], val_csv[1100];
static bool ready;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool find_in_path(const char *name, char *out, size_t n) {
    const char *path = getenv("PATH");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/%s", d, name);
        if (access(out, X_OK) == 0) return true;
    }
    return false;
}

/* A smooth random picture: coloured blobs over a gradient. */
static void synth(Image *im, int S, uint64_t seed) {
    assert_int_equal(image_alloc(im, S, S, 3), 0);
    uint64_t s = data_hash64(seed + 1);
    float cx[3], cy[3], col[3][3];
    for (int k = 0; k < 3; k++) {
        s = data_hash64(s);
        cx[k] = (float)(s % 1000) / 1000.0f * S, cy[k] = (float)((s >> 20) % 1000) / 1000.0f * S;
        for (int c = 0; c < 3; c++) col[k][c] = (float)((s >> (30 + 8 * c)) % 256) / 255.0f;
    }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0.2f + 0.3f * (float)(x + y) / (2.0f * S);
                for (int k = 0; k < 3; k++) {
                    float d2 = (x - cx[k]) * (x - cx[k]) + (y - cy[k]) * (y - cy[k]);
                    v += 0.5f * col[k][c] * expf(-d2 / (0.05f * S * S));
                }
                image_at(im, x, y)[c] = v > 1 ? 1 : v;
            }
}

/* ROOT/<split>/noisy/{LQ,GT}/NNNN.png */
static void write_ir_split(const char *split, int n, uint64_t seed) {
    char lq[1400], gt[1400], path[1500];
    snprintf(lq, sizeof lq, "%s/%s/noisy/LQ", ir_root, split);
    snprintf(gt, sizeof gt, "%s/%s/noisy/GT", ir_root, split);
    assert_int_equal(path_mkdir_p(lq), 0);
    assert_int_equal(path_mkdir_p(gt), 0);
    for (int i = 0; i < n; i++) {
        Image clean, bad;
        synth(&clean, 32, seed + (uint64_t)i);
        assert_int_equal(degrade_apply(&clean, 4, NULL, seed * 1000 + (uint64_t)i, &bad), 0);   /* 4: noisy */
        snprintf(path, sizeof path, "%s/%04d.png", lq, i + 1);
        assert_int_equal(image_save(path, &bad), 0);
        snprintf(path, sizeof path, "%s/%04d.png", gt, i + 1);
        assert_int_equal(image_save(path, &clean), 0);
        image_free(&clean), image_free(&bad);
    }
}

/* n photos of each of three degradations, rows "photo k: <degradation>", paths relative to the CSV. */
static void write_csv(const char *csv, const char *split, int n, uint64_t seed) {
    static const int types[3] = {3, 4, 1};   /* low-light, noisy, hazy */
    CaptionRow rows[64];
    int k = 0;
    char path[1400], rel[256], caption[64];
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < n; i++) {
            Image clean, bad;
            synth(&clean, 40, seed + (uint64_t)i * 31 + (uint64_t)t * 7);
            assert_int_equal(degrade_apply(&clean, types[t], NULL, seed * 77 + (uint64_t)(i * 3 + t), &bad), 0);
            snprintf(rel, sizeof rel, "%s_%d_%d.png", split, t, i);
            snprintf(path, sizeof path, "%s/%s", dir, rel);
            assert_int_equal(image_save(path, &bad), 0);
            image_free(&clean), image_free(&bad);
            snprintf(caption, sizeof caption, "photo %d", i);
            rows[k].filepath = strdup(rel);
            rows[k].caption = strdup(caption);
            rows[k].degradation = strdup(degrade_name(types[t]));
            k++;
        }
    assert_int_equal(caption_csv_write(csv, rows, k), 0);
    for (int i = 0; i < k; i++) free(rows[i].filepath), free(rows[i].caption), free(rows[i].degradation);
}

static int setup(void **state) {
    (void)state;
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return -1;
    self[k] = 0;
    snprintf(bin, sizeof bin, "%s/../daclip", dirname(self));
    if (!dist_built_with_mpi() || !find_in_path("mpirun", mpirun, sizeof mpirun) || access(bin, X_OK)) return 0;
    if (test_tmpdir_create(dir, sizeof dir, "mpi")) return -1;
    /* OpenMPI keeps some of its start-up allocations to the end (leaks as LeakSanitizer sees them; make san).
     * The suppressions name its libraries, so LSan must see them in the stacks: components stay loaded
     * (disable_dlclose, given in run()) and the slow unwinder walks through frames without frame pointers.
     * Tests run from the repository root. */
    if (!realpath("tests/lsan-openmpi.supp", supp)) return -1;
    snprintf(lsan_options, sizeof lsan_options, "suppressions=%s:print_suppressions=0:fast_unwind_on_malloc=0", supp);
    snprintf(ir_root, sizeof ir_root, "%s/ir", dir);
    write_ir_split("train", 12, 1);
    write_ir_split("val", 3, 500);
    snprintf(ir_json, sizeof ir_json, "%s/unet.json", dir);
    UNetConfig cfg = {3, 3, 8, 2, {1, 2}, 0, false, false};
    char meta[512];
    FILE *f = fopen(ir_json, "w");
    if (!f || unet_config_to_json(&cfg, meta, sizeof meta)) return -1;
    fputs(meta, f);
    fclose(f);
    snprintf(clip_path, sizeof clip_path, "%s/clip.safetensors", dir);
    snprintf(daclip_path, sizeof daclip_path, "%s/daclip.safetensors", dir);
    if (test_write_tiny_daclip(clip_path, daclip_path, 0)) return -1;
    snprintf(train_csv, sizeof train_csv, "%s/train.csv", dir);
    snprintf(val_csv, sizeof val_csv, "%s/val.csv", dir);
    write_csv(train_csv, "train", 4, 1);
    write_csv(val_csv, "val", 2, 900);
    ready = true;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return ready ? test_tmpdir_remove(dir) : 0;
}

/* Runs `daclip args` as one process (ranks 0) or under mpirun -np ranks, 1 thread per process, stdout and
 * stderr to <dir>/<tag>.out/.err; returns the exit status (124 after a 300 s timeout). */
static int run(int ranks, const char *tag, const char *args) {
    char cmd[32768], launch[PATH_MAX + 256] = "";
    if (ranks > 0)
        snprintf(launch, sizeof launch, "'%s' -np %d --oversubscribe --allow-run-as-root --bind-to none -x DACLIP_THREADS "
                 "-x LSAN_OPTIONS -x OMPI_MCA_mca_base_component_disable_dlclose -x PMIX_MCA_mca_base_component_disable_dlclose ",
                 mpirun, ranks);
    snprintf(cmd, sizeof cmd, "DACLIP_THREADS=1 LSAN_OPTIONS='%s' OMPI_MCA_mca_base_component_disable_dlclose=1 "
             "PMIX_MCA_mca_base_component_disable_dlclose=1 timeout 300 %s'%s' %s "
             ">'%s/%s.out' 2>'%s/%s.err'", lsan_options, launch, bin, args, dir, tag, dir, tag);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void show_err(const char *tag) {
    char path[1300], text[8192];
    snprintf(path, sizeof path, "%s/%s.err", dir, tag);
    FILE *f = fopen(path, "r");
    size_t k = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[k] = 0;
    if (f) fclose(f);
    print_error("%s stderr:\n%s\n", tag, text);
}

static void must_run(int ranks, const char *tag, const char *args) {
    int rc = run(ranks, tag, args);
    if (rc) {
        show_err(tag);
        fail_msg("%s: exit %d", tag, rc);
    }
}

/* The log column `col` (0-based) of every row. Returns the row count. */
static int log_column(const char *out, int col, double *v, int max) {
    char path[1300], line[2048];
    snprintf(path, sizeof path, "%s/log.csv", out);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s missing", path);
    int n = 0;
    assert_non_null(fgets(line, sizeof line, f));   /* header */
    while (n < max && fgets(line, sizeof line, f)) {
        char *p = line;
        for (int c = 0; c < col && p; c++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        assert_non_null(p);
        v[n++] = strtod(p, NULL);
    }
    fclose(f);
    return n;
}

static void compare_logs(const char *a, const char *b, int col, int rows, double tol, const char *what) {
    double va[256], vb[256];
    assert_int_equal(log_column(a, col, va, 256), rows);
    assert_int_equal(log_column(b, col, vb, 256), rows);
    double worst = 0;
    for (int i = 0; i < rows; i++) {
        if (isnan(va[i]) && isnan(vb[i])) continue;   /* no validation at this step in either */
        double e = fabs(va[i] - vb[i]) / fmax(1.0, fabs(va[i]));
        if (!close_enough(vb[i], va[i], tol * fmax(1.0, fabs(va[i])), 0)) fail_msg("%s, row %d: %.8g vs %.8g", what, i + 1, va[i], vb[i]);
        worst = worst_of(worst, e);
    }
    print_message("    %-34s worst relative difference %.2g over %d steps\n", what, worst, rows);
}

/* Every tensor of two model files, |a - b| <= tol·max(1, max|a|) over the file. */
static void compare_models(const char *a_dir, const char *b_dir, const char *name, double tol) {
    char pa[1300], pb[1300];
    snprintf(pa, sizeof pa, "%s/%s", a_dir, name);
    snprintf(pb, sizeof pb, "%s/%s", b_dir, name);
    StFile *fa = st_open(pa), *fb = st_open(pb);
    if (!fa || !fb) fail_msg("%s", t_errmsg());
    assert_int_equal(fa->n, fb->n);
    double worst = 0, scale = 0;
    int64_t total = 0;
    for (int i = 0; i < fa->n; i++) {
        const StEntry *ea = &fa->entries[i], *eb = st_find(fb, ea->name);
        assert_non_null(eb);
        int64_t n = 1;
        for (int d = 0; d < ea->ndim; d++) n *= ea->shape[d];
        for (int64_t k = 0; k < n; k++) {
            worst = worst_of(worst, fabs((double)ea->data[k] - eb->data[k]));
            scale = fmax(scale, fabs((double)ea->data[k]));
        }
        total += n;
    }
    print_message("    %-34s max |difference| %.2g over %lld weights (max |w| %.2g)\n", name, worst, (long long)total, scale);
    if (!close_enough(worst, 0, tol * fmax(1.0, scale), 0)) fail_msg("%s: weights differ by %g", name, worst);
    st_close(fa);
    st_close(fb);
}

#define SKIP_UNLESS_READY() \
    do {                    \
        if (!ready) skip(); \
    } while (0)

/* ---------------------------------------------------------------- train-ir */

static void test_ir_matches_one_process(void **state) {
    (void)state;
    SKIP_UNLESS_READY();
    char args[8192], one[1200], two[1200], half[1200], ckpt[1300];
    snprintf(one, sizeof one, "%s/ir1", dir);
    snprintf(two, sizeof two, "%s/ir2", dir);
    snprintf(half, sizeof half, "%s/ir2r", dir);
    const char *common = "train-ir --no-daclip --types noisy --batch 5 --patch 16 --steps 20 --lr 1e-3 --ema-every 1 "
                         "--val-images 3 --val-crop 0 --val-every 10 --quiet";
    snprintf(args, sizeof args, "%s --data '%s' --model '%s' --out '%s'", common, ir_root, ir_json, one);
    double t0 = now();
    must_run(0, "ir1", args);
    double t1 = now();
    snprintf(args, sizeof args, "%s --data '%s' --model '%s' --out '%s'", common, ir_root, ir_json, two);
    must_run(2, "ir2", args);
    print_message("    train-ir: 1 process %.1f s, 2 ranks %.1f s (start-up included)\n", t1 - t0, now() - t1);
    compare_logs(one, two, 2, STEPS, 1e-5, "train-ir loss per step");
    compare_logs(one, two, 3, STEPS, 1e-4, "train-ir validation PSNR (EMA)");
    compare_models(one, two, "model_raw.safetensors", 1e-4);
    compare_models(one, two, "model.safetensors", 1e-4);
    /* 2 ranks to step 10, then 2 ranks resuming from that checkpoint */
    snprintf(args, sizeof args, "%s --data '%s' --model '%s' --out '%s' --stop-at 10", common, ir_root, ir_json, half);
    must_run(2, "ir2a", args);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", half);
    snprintf(args, sizeof args, "%s --data '%s' --model '%s' --out '%s' --resume '%s'", common, ir_root, ir_json, half,
             ckpt);
    must_run(2, "ir2b", args);
    compare_logs(one, half, 2, STEPS, 1e-5, "train-ir loss, resumed at 10");
    compare_models(one, half, "model_raw.safetensors", 1e-4);
}

/* ---------------------------------------------------------------- contrastive trainers */

static void test_daclip_matches_one_process(void **state) {
    (void)state;
    SKIP_UNLESS_READY();
    char args[8192], one[1200], two[1200];
    snprintf(one, sizeof one, "%s/da1", dir);
    snprintf(two, sizeof two, "%s/da2", dir);
    const char *common = "train-daclip --batch 5 --steps 20 --warmup 2 --lr 1e-3 --val-every 10 --quiet";
    snprintf(args, sizeof args, "%s --clip '%s' --train '%s' --val '%s' --out '%s'", common, clip_path, train_csv,
             val_csv, one);
    must_run(0, "da1", args);
    snprintf(args, sizeof args, "%s --clip '%s' --train '%s' --val '%s' --out '%s'", common, clip_path, train_csv,
             val_csv, two);
    must_run(2, "da2", args);
    /* step,lr,loss,loss_clip,loss_degra,logit_scale,val_loss,val_loss_clip,val_loss_degra,val_top1 */
    compare_logs(one, two, 2, STEPS, 1e-5, "train-daclip loss per step");
    compare_logs(one, two, 5, STEPS, 1e-5, "train-daclip temperature");
    compare_logs(one, two, 6, STEPS, 1e-5, "train-daclip validation loss");
    compare_logs(one, two, 9, STEPS, 1e-9, "train-daclip validation accuracy");
    compare_models(one, two, "model.safetensors", WEIGHT_TOL_ADAM);
}

static void test_clip_matches_one_process(void **state) {
    (void)state;
    SKIP_UNLESS_READY();
    char args[8192], one[1200], two[1200];
    snprintf(one, sizeof one, "%s/clip1", dir);
    snprintf(two, sizeof two, "%s/clip2", dir);
    const char *common = "train-clip --model tiny --batch 5 --steps 20 --warmup 2 --lr 1e-3 --val-every 10";
    snprintf(args, sizeof args, "%s --train '%s' --val '%s' --out '%s'", common, train_csv, val_csv, one);
    must_run(0, "clip1", args);
    snprintf(args, sizeof args, "%s --train '%s' --val '%s' --out '%s'", common, train_csv, val_csv, two);
    must_run(2, "clip2", args);
    /* step,lr,loss,logit_scale,val_loss,val_top1 */
    compare_logs(one, two, 2, STEPS, 1e-5, "train-clip loss per step");
    compare_logs(one, two, 3, STEPS, 1e-5, "train-clip temperature");
    compare_logs(one, two, 4, STEPS, 1e-5, "train-clip validation loss");
    compare_logs(one, two, 5, STEPS, 1e-9, "train-clip validation top-1");
    compare_models(one, two, "model.safetensors", WEIGHT_TOL_ADAM);
}

/* ---------------------------------------------------------------- a rank that dies */

/* The pid of the process whose environment holds both `tag` and OMPI_COMM_WORLD_RANK=<rank>, or 0. */
static pid_t find_rank(const char *tag, int rank) {
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *d = opendir("/proc");
    if (!d) return 0;
    pid_t found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        char path[300];
        static char env[1 << 16];
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        bool has_tag = false, has_rank = false;
        for (size_t i = 0; i < n; i += strlen(env + i) + 1) {
            env[n] = 0;
            has_tag = has_tag || !strcmp(env + i, tag);
            has_rank = has_rank || !strcmp(env + i, want);
        }
        if (has_tag && has_rank) found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

static void test_killed_rank_ends_the_job(void **state) {
    (void)state;
    SKIP_UNLESS_READY();
    char tag[64], out[1200], err_path[1300], log_path[1300];
    snprintf(tag, sizeof tag, "DACLIP_TEST_JOB=%d", (int)getpid());
    snprintf(out, sizeof out, "%s/killed", dir);
    snprintf(err_path, sizeof err_path, "%s/killed.err", dir);
    snprintf(log_path, sizeof log_path, "%s/log.csv", out);
    fflush(stdout), fflush(stderr);
    pid_t job = fork();
    assert_true(job >= 0);
    if (job == 0) {
        FILE *e = freopen(err_path, "w", stderr);
        if (!e || !freopen("/dev/null", "w", stdout)) _exit(97);
        putenv(tag);
        setenv("DACLIP_THREADS", "1", 1);
        setenv("LSAN_OPTIONS", lsan_options, 1);
        setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
        setenv("PMIX_MCA_mca_base_component_disable_dlclose", "1", 1);
        char data[1200], model[1200];
        snprintf(data, sizeof data, "%s", ir_root);
        snprintf(model, sizeof model, "%s", ir_json);
        execl(mpirun, mpirun, "-np", "2", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-x",
              "DACLIP_TEST_JOB", "-x", "DACLIP_THREADS", "-x", "LSAN_OPTIONS", "-x", "OMPI_MCA_mca_base_component_disable_dlclose", "-x",
              "PMIX_MCA_mca_base_component_disable_dlclose", bin, "train-ir", "--no-daclip", "--types",
              "noisy", "--batch", "4", "--patch", "16", "--steps", "1000000", "--val-images", "0", "--ckpt-every",
              "1000000", "--quiet", "--data", data, "--model", model, "--out", out, (char *)NULL);
        _exit(96);
    }
    /* wait until rank 1 exists and training has started (rank 0 wrote the log's header) */
    pid_t victim = 0;
    struct stat st;
    for (double t0 = now(); now() - t0 < 120;) {
        if (!victim) victim = find_rank(tag, 1);
        if (victim && stat(log_path, &st) == 0) break;
        if (waitpid(job, NULL, WNOHANG) == job) fail_msg("the job ended before it could be killed");
        usleep(50000);
    }
    assert_true(victim > 0);
    usleep(500000);   /* a few steps in, inside the allreduce loop */
    double t_kill = now();
    assert_int_equal(kill(victim, SIGKILL), 0);
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(job, &status, WNOHANG)) == 0 && now() - t_kill < 60) usleep(20000);
    double took = now() - t_kill;
    if (r != job) {
        kill(job, SIGKILL);
        waitpid(job, &status, 0);
        fail_msg("the job was still running %.0f s after rank 1 was killed", took);
    }
    print_message("    killed rank 1 (pid %d): the job ended after %.2f s with status %d\n", (int)victim, took,
                  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    assert_true(!WIFEXITED(status) || WEXITSTATUS(status) != 0);
    assert_true(took < 20);
    char text[16384];
    FILE *f = fopen(err_path, "r");
    assert_non_null(f);
    size_t k = fread(text, 1, sizeof text - 1, f);
    text[k] = 0;
    fclose(f);
    const char *named = strstr(text, "rank 1");
    if (!named) fail_msg("no message names rank 1:\n%s", text);
    const char *line = named;
    while (line > text && line[-1] != '\n') line--;
    print_message("    stderr: %.*s\n", (int)strcspn(line, "\n"), line);
    /* and no rank is left behind */
    usleep(200000);
    assert_int_equal(find_rank(tag, 0), 0);
}

/* An error on one rank (rank 0 cannot create --out; the other rank is already waiting for it) ends the job
 * through MPI_Abort, naming the rank, instead of leaving the other rank blocked in a collective. */
static void test_rank_error_aborts_the_job(void **state) {
    (void)state;
    SKIP_UNLESS_READY();
    char args[8192], path[1300], text[8192];
    snprintf(args, sizeof args, "train-ir --no-daclip --types noisy --batch 4 --patch 16 --steps 5 --val-images 0 "
             "--data '%s' --model '%s' --out /proc/no-such-dir/out", ir_root, ir_json);
    double t0 = now();
    int rc = run(2, "err2", args);
    double took = now() - t0;
    snprintf(path, sizeof path, "%s/err2.err", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t k = fread(text, 1, sizeof text - 1, f);
    text[k] = 0;
    fclose(f);
    print_message("    exit %d after %.1f s\n", rc, took);
    assert_true(rc != 0 && rc != 124);
    if (!strstr(text, "cannot create /proc/no-such-dir/out") || !strstr(text, "rank 0 of 2 stopped with an error"))
        fail_msg("stderr does not name the error and the rank:\n%s", text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ir_matches_one_process),
        cmocka_unit_test(test_daclip_matches_one_process),
        cmocka_unit_test(test_clip_matches_one_process),
        cmocka_unit_test(test_killed_rank_ends_the_job),
        cmocka_unit_test(test_rank_error_aborts_the_job),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
