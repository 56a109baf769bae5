/* daclip train-daclip: train DA-CLIP's controller on top of a frozen CLIP (reference §2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "train/commands.h"
#include "train/daclip_model.h"
#include "train/daclip_train.h"
#include "train/dist.h"
#include "train/options.h"
#include "train/paths.h"

static const char usage_head[] =
    "usage: daclip train-daclip --clip CLIP.safetensors --train train.csv [--val val.csv] --out DIR [options]\n\n"
    "Trains the DA-CLIP controller: a copy of the CLIP image tower, with zero-initialised layers that steer the\n"
    "frozen tower, so that from a degraded image it gives the content embedding of the clean caption and a\n"
    "degradation embedding that matches the degradation's name (joint contrastive loss). The CLIP stays frozen.\n"
    "Input: the CSVs written by `daclip make-dataset` (filepath<TAB>\"caption: degradation\"; paths relative to\n"
    "the CSV's folder). Writes DIR/model.safetensors (the DA-CLIP, official names), DIR/checkpoint.safetensors\n"
    "(the full training state, atomic), DIR/log.csv and DIR/loss.png.\n\n"
    "Data-parallel: `mpirun -np N daclip train-daclip ...` splits every batch of --batch rows over N ranks and\n"
    "trains what one process would (the contrastive loss sees the whole batch; docs/distributed.md).\n";

int cmd_train_daclip(int argc, char **argv) {
    const char *clip = NULL, *train_csv = NULL, *val_csv = NULL, *out = NULL, *vocab = NULL, *root = NULL;
    bool official_init = false;
    DaclipTrainOptions o;
    daclip_train_default_options(&o);
    const OptSpec specs[] = {
        {"--clip", OPT_STR | OPT_REQUIRED, &clip, 0, 0, "FILE", "the CLIP to steer (model.safetensors of train-clip)"},
        {"--train", OPT_STR | OPT_REQUIRED, &train_csv, 0, 0, "CSV", "training rows"},
        {"--val", OPT_STR, &val_csv, 0, 0, "CSV", "validation rows: both losses and the degradation accuracy"},
        {"--out", OPT_STR | OPT_REQUIRED, &out, 0, 0, "DIR", "output folder"},
        {"--root", OPT_STR, &root, 0, 0, "DIR", "resolve relative image paths against DIR (default: each CSV's folder)"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges (default: the one the CLIP names)"},
        {"--steps", OPT_I64, &o.steps, 1, 1e12, "N", "optimizer steps (default 1000)"},
        {"--batch", OPT_INT, &o.batch, 2, 65536, "N", "batch size (default 64)"},
        {"--lr", OPT_DOUBLE, &o.lr, 1e-12, 10, "X", "peak learning rate (default 2e-4)"},
        {"--wd", OPT_DOUBLE, &o.weight_decay, 0, 10, "X", "weight decay of >=2-D non-norm, non-bias weights (0.05)"},
        {"--warmup", OPT_I64, &o.warmup, 0, 1e12, "N", "linear warmup steps (default 100)"},
        {"--crop-scale", OPT_DOUBLE, &o.scale_min, 0.05, 1, "X", "RandomResizedCrop's smallest area share (default 0.9, as\nopen_clip; 1 trains on the images' own pixels, as they are\nclassified: 90.2 % against 89.4 % on scripts/train-daclip-small.sh)"},
        {"--mirror", OPT_FLAG, &o.mirror, 0, 0, NULL,
         "mirror half the training views left-right (not in the official recipe;\nevery degradation here survives a mirror)"},
        {"--seed", OPT_U64, &o.seed, 0, 0, "N", "batch order and crop seed (default 0)"},
        {"--val-every", OPT_I64, &o.val_every, 0, 1e12, "N", "validate every N steps (default: at the end)"},
        {"--ckpt-every", OPT_I64, &o.ckpt_every, 0, 1e12, "N", "checkpoint every N steps (default: at the end)"},
        {"--stop-at", OPT_I64, &o.stop_at, 0, 1e12, "N", "stop after step N of the schedule (resume later)"},
        {"--resume", OPT_STR, &o.resume, 0, 0, "FILE", "continue from DIR/checkpoint.safetensors " OPT_RESUME_HELP_TAIL},
        {"--official-init", OPT_FLAG, &official_init, 0, 0, NULL,
         "start the controller as the official code does (zero_modules.0 =\nln_post, the controller's ln_post fresh; "
         "reference §1.5)"},
        {"--quiet", OPT_FLAG, &o.quiet, 0, 0, NULL, "no progress bar"},
        {0}};
    int parsed = opts_parse("train-daclip", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (dist_init()) return 1;   /* under mpirun: one rank of a data-parallel job (docs/distributed.md) */
    t_init();
    bool rank0 = dist_is_root();   /* rank 0 reports; every rank reports its errors */
    char err[2048] = "";
    DaclipModel m;
    if (daclip_model_from_clip(clip, vocab, official_init, &m, err, sizeof err)) {
        fprintf(stderr, "daclip train-daclip: %s\n", err);
        return dist_finish("train-daclip", 1);
    }
    char *troot = path_root_for(root, train_csv);
    char *vroot = val_csv ? path_root_for(root, val_csv) : NULL;
    DaclipSamples train = {0}, val = {0};
    int rc = 1;
    if (!troot || (val_csv && !vroot)) {
        fprintf(stderr, "daclip train-daclip: out of memory\n");
        goto done;
    }
    if (rank0) fprintf(stderr, "loading %s ...\n", train_csv);
    if (daclip_samples_from_csv(&m, train_csv, troot, &train, err, sizeof err) ||
        (val_csv && daclip_samples_from_csv(&m, val_csv, vroot, &val, err, sizeof err))) {
        fprintf(stderr, "daclip train-daclip: %s\n", err);
        goto done;
    }
    o.out_dir = out;
    if (rank0)
        fprintf(stderr, "DA-CLIP on %s (%s): %lld trainable and %lld frozen parameters; %lld training and %lld "
                "validation rows\n", clip, m.clip.cfg.name, (long long)params_count(&m.ps, "", true),
                (long long)(params_count(&m.ps, "", false) - params_count(&m.ps, "", true)), (long long)train.n,
                (long long)val.n);
    DaclipTrainResult r;
    if (daclip_train(&m, &train, val_csv ? &val : NULL, &o, &r) == 0) {
        if (rank0) {
            printf("final train loss %.4f (first %.4f)", r.train_loss, r.first_loss);
            if (val_csv)
                printf(", val loss content %.4f degradation %.4f, degradation accuracy %.2f%%", r.val_loss_clip,
                       r.val_loss_degra, 100 * r.val_acc);
            printf(", %.1f images/s\nwrote %s/model.safetensors\n", r.images_per_s, out);
        }
        rc = out_close_stdout("train-daclip");
    }
done:
    daclip_samples_free(&train);
    daclip_samples_free(&val);
    free(troot);
    free(vroot);
    daclip_model_free(&m);
    t_arena_shutdown();
    return dist_finish("train-daclip", rc);
}
