/* One restoration end to end, through the functions `daclip restore` runs (train/restore_pipeline.h): load the
 * two models (by default the random-weight official-layout files of bench/gen_official_checkpoints.py, read
 * directly: daclip_ViT-B-32.pt and universal-ir.pth, full universal config), DA-CLIP once on the image's 224
 * CLIP view, then the posterior sampler (reference §4.5: 100 U-Net evaluations, the default tiling for the
 * size: whole up to 512², 384-px tiles above), clamp and write the PNG. The input is a synthetic SIZE×SIZE PNG
 * (or --image); content does not change the work.
 * Prints one line: the restoration's wall time (DA-CLIP + sampling + write; model loading is reported apart,
 * it is paid once per run of a folder, as is the encoding of the ten degradation names for the printed
 * prediction, counted with the loading: "names"), the time per step, the process's peak RSS (loading included) and the
 * peak RSS of the restoration alone (VmHWM reset through /proc/self/clear_refs after loading).
 * Peers: bench_restore_torch.py (PyTorch, the official loop) and bench_restore_onnx.js (ONNX Runtime);
 * scripts/bench-restore.sh runs them side by side.
 * Options: --size PX (256), --steps N (100), --daclip FILE, --model FILE, --image FILE, --tile PX, --seed N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "data/image_io.h"
#include "train/restore_pipeline.h"

/* VmHWM of this process in MB, -1 if unknown. */
static double vm_hwm_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    double kb = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0), so that the next reading is the peak of what follows. */
static bool reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* A size×size test picture (gradients and a texture) at path: the work does not depend on it. */
static int write_test_image(const char *path, int size) {
    Image im;
    if (image_alloc(&im, size, size, 3)) return -1;
    uint32_t s = 12345;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            s = s * 1664525u + 1013904223u;
            float n = (float)(s >> 8) / 16777216.0f - 0.5f;
            float *p = image_at(&im, x, y);
            p[0] = 0.2f + 0.6f * (float)x / size + 0.1f * n;
            p[1] = 0.2f + 0.6f * (float)y / size + 0.1f * n;
            p[2] = 0.5f + 0.3f * n;
        }
    int rc = image_save(path, &im);
    image_free(&im);
    return rc;
}

int main(int argc, char **argv) {
    int size = 256, steps = 100, tile = 0;
    uint64_t seed = 0;
    const char *daclip = "build/official/daclip_ViT-B-32.pt", *model = "build/official/universal-ir.pth";
    const char *image = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(argv[i], "--size")) size = atoi(v);
        else if (v && !strcmp(argv[i], "--steps")) steps = atoi(v);
        else if (v && !strcmp(argv[i], "--tile")) tile = atoi(v);
        else if (v && !strcmp(argv[i], "--seed")) seed = strtoull(v, NULL, 10);
        else if (v && !strcmp(argv[i], "--daclip")) daclip = v;
        else if (v && !strcmp(argv[i], "--model")) model = v;
        else if (v && !strcmp(argv[i], "--image")) image = v;
        else {
            fprintf(stderr, "usage: bench_restore [--size PX] [--steps N] [--daclip FILE] [--model FILE] [--image FILE]"
                            " [--tile PX] [--seed N]\n");
            return 2;
        }
    }
    if (size < 16 || steps < 1) {
        fprintf(stderr, "bench_restore: bad --size/--steps\n");
        return 2;
    }
    char dir[] = "/tmp/bench_restore.XXXXXX", in_path[64], out_path[64], err[2048] = "";
    if (!mkdtemp(dir)) {
        perror("bench_restore: mkdtemp");
        return 1;
    }
    snprintf(in_path, sizeof in_path, "%s/in.png", dir);
    snprintf(out_path, sizeof out_path, "%s/out.png", dir);
    if (!image && write_test_image(in_path, size)) {
        fprintf(stderr, "bench_restore: %s\n", data_error());
        rmdir(dir);
        return 1;
    }
    char *path = (char *)(image ? image : in_path);
    t_init();
    int rc = 1;
    Restorer r;
    RestoreEmbedding emb = {0};
    Image lq = {0}, res = {0};
    double t0 = now_s();
    if (restorer_open(&r, daclip, model, steps, err, sizeof err)) {
        fprintf(stderr, "bench_restore: %s\n", err);
        goto cleanup_files;
    }
    /* the degradation names through the text tower: once per run, like loading (the official test.py does not
     * classify; our restore prints the predicted degradation) */
    double tn = now_s();
    if (daclip_name_embeddings(&r.daclip)) {
        fprintf(stderr, "bench_restore: %s\n", t_errmsg());
        goto done;
    }
    double t_names = now_s() - tn, t_load = now_s() - t0, load_peak = vm_hwm_mb();
    bool hwm_reset = reset_hwm();
    double t1 = now_s();
    if (restorer_embed_files(&r, "bench_restore", &path, 1, &emb, err, sizeof err) != 0 || !emb.ok) {
        fprintf(stderr, "bench_restore: %s\n", err[0] ? err : "cannot read the input image");
        goto done;
    }
    double t2 = now_s();
    if (image_load(path, &lq)) {
        fprintf(stderr, "bench_restore: %s\n", data_error());
        goto done;
    }
    RestoreOptions o = restore_options_default();
    o.seed = seed, o.tile = tile;
    const RestoreEmbedding *e = &emb;
    double ts = now_s();
    if (restorer_run(&r, &lq, &e, 1, &o, "restore", &res, err, sizeof err)) {
        fprintf(stderr, "bench_restore: %s\n", err);
        goto done;
    }
    double t3 = now_s();
    if (restore_save_atomic(out_path, &res)) {
        fprintf(stderr, "bench_restore: %s\n", data_error());
        goto done;
    }
    double t4 = now_s(), restore_peak = vm_hwm_mb();
    int auto_tile, overlap;
    restore_auto_tile(lq.h, lq.w, &auto_tile, &overlap);
    if (tile) auto_tile = tile;
    char tiling[64];
    if (auto_tile == 0 || (auto_tile >= lq.w && auto_tile >= lq.h)) snprintf(tiling, sizeof tiling, "untiled");
    else snprintf(tiling, sizeof tiling, "tiles %d px", auto_tile);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak = ru.ru_maxrss / 1024.0;
    if (load_peak > peak) peak = load_peak;
    char rpeak[48];
    if (hwm_reset && restore_peak > 0) snprintf(rpeak, sizeof rpeak, "%.0f MB", restore_peak);
    else snprintf(rpeak, sizeof rpeak, "n/a");
    printf("daclip   %dx%d restore: %.2f s/image, %.3f s/step, %d steps, load %.1f s (names %.2f s), DA-CLIP %.2f s, "
           "sampling %.2f s, peak RSS %.0f MB, restoring %s, threads %d, %s (%s)\n",
           lq.w, lq.h, t4 - t1, (t3 - ts) / r.sde.steps, r.sde.steps, t_load, t_names, t2 - t1, t3 - ts, peak, rpeak,
           t_threads(), tiling, degrade_name(emb.type));
    rc = 0;
done:
    image_free(&lq), image_free(&res);
    restore_embedding_free(&emb);
    restorer_close(&r);
    t_arena_shutdown();
cleanup_files:
    unlink(out_path), unlink(in_path), rmdir(dir);
    return rc;
}
