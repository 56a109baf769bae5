/* daclip eval-daclip: degradation accuracy of a DA-CLIP model on a dataset CSV, per type, with the confusion
 * matrix (as the official da-clip/src/evaluate.py, plus both losses). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/file_io.h"
#include "tensor/tensor.h"
#include "train/commands.h"
#include "train/confusion_plot.h"
#include "train/daclip_model.h"
#include "train/daclip_train.h"
#include "train/options.h"
#include "train/paths.h"

static const char usage_head[] =
    "usage: daclip eval-daclip --model DACLIP.safetensors --data val.csv [options]\n\n"
    "Classifies the degradation of every image of a dataset CSV (as written by make-dataset) and prints the\n"
    "accuracy per type and overall, the 10x10 confusion matrix and both validation losses. --csv and --heatmap\n"
    "write the same as a CSV (one row per true type) and as a PNG heat map.\n";

static int write_csv(const char *path, const DaclipEval *ev) {
    DataOutFile o;
    if (data_out_open(&o, path)) return -1;
    FILE *f = o.fp;
    fprintf(f, "true,n,correct,accuracy");
    for (int p = 0; p < DEGRADE_N; p++) fprintf(f, ",pred_%s", degrade_name(p));
    fprintf(f, "\n");
    for (int t = 0; t < DEGRADE_N; t++) {
        int64_t n = 0;
        for (int p = 0; p < DEGRADE_N; p++) n += ev->confusion[t][p];
        fprintf(f, "%s,%lld,%lld,%.6f", degrade_name(t), (long long)n, (long long)ev->confusion[t][t],
                n ? (double)ev->confusion[t][t] / (double)n : 0.0);
        for (int p = 0; p < DEGRADE_N; p++) fprintf(f, ",%lld", (long long)ev->confusion[t][p]);
        fprintf(f, "\n");
    }
    return data_out_commit(&o);
}

int cmd_eval_daclip(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *root = NULL, *vocab = NULL, *csv = NULL, *heatmap = NULL;
    int batch = 64;
    const OptSpec specs[] = {
        {"--model", OPT_STR | OPT_REQUIRED, &model, 0, 0, "FILE", "a DA-CLIP model (model.safetensors of train-daclip)"},
        {"--data", OPT_STR | OPT_REQUIRED, &data, 0, 0, "CSV", "dataset rows (filepath<TAB>\"caption: degradation\")"},
        {"--root", OPT_STR, &root, 0, 0, "DIR", "resolve relative image paths against DIR (default: the CSV's folder)"},
        {"--csv", OPT_STR, &csv, 0, 0, "FILE", "per-type accuracy and the confusion matrix as CSV"},
        {"--heatmap", OPT_STR, &heatmap, 0, 0, "FILE", "the confusion matrix as a PNG heat map"},
        {"--batch", OPT_INT, &batch, 1, 4096, "N", "images per forward pass and per validation-loss batch (64)"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges (default: the one the model names)"},
        {0}};
    int parsed = opts_parse("eval-daclip", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    t_init();
    char err[2048] = "";
    DaclipModel m;
    if (daclip_model_load(model, vocab, &m, err, sizeof err)) {
        fprintf(stderr, "daclip eval-daclip: %s\n", err);
        return 1;
    }
    daclip_model_prepack(&m);   /* inference only from here */
    char *droot = path_root_for(root, data);
    DaclipSamples val = {0};
    DaclipEval ev;
    int rc = 1;
    if (!droot || daclip_samples_from_csv(&m, data, droot, &val, err, sizeof err)) {
        fprintf(stderr, "daclip eval-daclip: %s\n", droot ? err : "out of memory");
        goto done;
    }
    if (daclip_evaluate(&m, &val, batch, &ev, true)) {
        fprintf(stderr, "daclip eval-daclip: %s\n", t_errmsg());
        goto done;
    }
    printf("%-16s %6s %9s\n", "degradation", "images", "accuracy");
    for (int t = 0; t < DEGRADE_N; t++) {
        int64_t n = 0;
        for (int p = 0; p < DEGRADE_N; p++) n += ev.confusion[t][p];
        if (n) printf("%-16s %6lld %8.2f%%\n", degrade_name(t), (long long)n, 100.0 * (double)ev.confusion[t][t] / (double)n);
        else printf("%-16s %6d %9s\n", degrade_name(t), 0, "-");
    }
    printf("%-16s %6lld %8.2f%%\n\n", "overall", (long long)ev.n, 100 * ev.acc);
    printf("confusion (rows: true, columns: predicted, in the order above)\n");
    for (int t = 0; t < DEGRADE_N; t++) {
        printf("%-16s", degrade_name(t));
        for (int p = 0; p < DEGRADE_N; p++) printf(" %5lld", (long long)ev.confusion[t][p]);
        printf("\n");
    }
    printf("\nvalidation loss: content %.4f, degradation %.4f (batches of %d)\n", ev.loss_clip, ev.loss_degra, batch);
    rc = 0;
    if (csv) {
        if (write_csv(csv, &ev)) {
            fprintf(stderr, "daclip eval-daclip: %s\n", data_error());
            rc = 1;
        } else {
            fprintf(stderr, "wrote %s\n", csv);
        }
    }
    if (heatmap) {
        const char *labels[DEGRADE_N];
        for (int t = 0; t < DEGRADE_N; t++) labels[t] = degrade_name(t);
        char title[160];
        snprintf(title, sizeof title, "DEGRADATION ACCURACY %.1f PERCENT", 100 * ev.acc);
        if (confusion_plot(heatmap, DEGRADE_N, &ev.confusion[0][0], labels, title)) {
            fprintf(stderr, "daclip eval-daclip: %s\n", data_error());
            rc = 1;
        } else {
            fprintf(stderr, "wrote %s\n", heatmap);
        }
    }
    if (out_close_stdout("eval-daclip")) rc = 1;
done:
    daclip_samples_free(&val);
    free(droot);
    daclip_model_free(&m);
    t_arena_shutdown();
    return rc;
}
