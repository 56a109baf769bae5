/* Data loader throughput: 256×256 patches/s (with the 224 CLIP view) read from a dataset on disk, from the
 * decoded-image cache, and synthesised on the fly with all ten degradations.
 * usage: build/bench/bench_loader [--photos 12] [--batches 20] [--batch 16] [--threads 2] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/loader.h"

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static double cpu_ms_per_patch;   /* process CPU time per patch of the last run (robust on a busy machine) */

/* Synthetic 480×320 photos: gradients, stripes and blobs, so every degradation has structure to act on. */
static int make_photos(const char *dir, int n) {
    for (int i = 0; i < n; i++) {
        Image im;
        if (image_alloc(&im, 480, 320, 3)) return -1;
        for (int y = 0; y < im.h; y++)
            for (int x = 0; x < im.w; x++) {
                float *p = image_at(&im, x, y);
                float cx = x - 240.f - 30.f * i, cy = y - 160.f;
                p[0] = 0.5f + 0.4f * sinf(x * 0.03f + i);
                p[1] = (float)y / im.h;
                p[2] = expf(-(cx * cx + cy * cy) / 8000.f) * 0.8f + 0.1f * ((x / 16 + y / 16) % 2);
            }
        char path[512];
        snprintf(path, sizeof path, "%s/photo%02d.png", dir, i);
        int rc = image_save(path, &im);
        image_free(&im);
        if (rc) return -1;
    }
    return 0;
}

static double run(const Dataset *ds, LoaderConfig c, int batches) {
    Loader *l = loader_create(ds, &c);
    if (!l) { fprintf(stderr, "bench: %s\n", data_error()); exit(1); }
    if (!loader_next(l)) { fprintf(stderr, "bench: %s\n", data_error()); exit(1); }   /* warm-up */
    double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < batches; i++)
        if (!loader_next(l)) { fprintf(stderr, "bench: %s\n", data_error()); exit(1); }
    double dt = now() - t0;
    cpu_ms_per_patch = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1000.0 / ((double)batches * c.batch);
    loader_destroy(l);
    return (double)batches * c.batch / dt;
}

static void report(const char *mode, double rate) { printf("%-34s %10.1f %14.2f\n", mode, rate, cpu_ms_per_patch); }

int main(int argc, char **argv) {
    int photos = 12, batches = 20;
    LoaderConfig c;
    loader_default_config(&c);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--photos")) photos = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches")) batches = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) c.batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) c.threads = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    char root[] = "/tmp/daclip_bench_loader_XXXXXX";
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    char src[128], out[128], cmd[300];
    snprintf(src, sizeof src, "%s/src", root);
    snprintf(out, sizeof out, "%s/ds", root);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", src);
    if (system(cmd) || make_photos(src, photos)) { fprintf(stderr, "bench: cannot write photos: %s\n", data_error()); return 1; }
    MakeDatasetOptions o;
    make_dataset_default_options(&o);
    o.src = src;
    o.out = out;
    o.val_frac = 0;
    double t0 = now();
    if (make_dataset(&o)) { fprintf(stderr, "bench: %s\n", data_error()); return 1; }
    double t_make = now() - t0;
    Dataset disk, clean;
    if (dataset_open(out, "train", &disk) || dataset_open_clean(src, &clean)) { fprintf(stderr, "bench: %s\n", data_error()); return 1; }
    c.epoch_len = 1 << 20;
    printf("%d photos 480x320, %d pairs on disk (make-dataset %.2f s); batch %d, patch %d, CLIP view %d, %d threads\n",
           photos, disk.n, t_make, c.batch, c.patch, c.clip_size, c.threads);
    printf("%-34s %10s %14s\n", "mode", "patches/s", "CPU ms/patch");
    report("disk (PNG decode every sample)", run(&disk, c, batches));
    c.cache = 1;
    report("disk + decoded-image cache", run(&disk, c, batches));
    c.cache = 0;
    report("on the fly (10 degradations)", run(&clean, c, batches));
    c.cache = 1;
    report("on the fly + cache", run(&clean, c, batches));
    c.clip_size = 0;
    report("on the fly + cache, no CLIP view", run(&clean, c, batches));
    dataset_free(&disk);
    dataset_free(&clean);
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) ? 1 : 0;
}
