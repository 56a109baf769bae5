/* daclip train-ir: train (or fine-tune) the IR-SDE restoration U-Net, steered by a frozen DA-CLIP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "train/commands.h"
#include "train/dist.h"
#include "train/ir_train.h"
#include "train/options.h"

static const char usage_head[] =
    "usage: daclip train-ir --daclip D.safetensors --data ROOT --out DIR [options]\n"
    "       daclip train-ir --no-daclip --data ROOT --out DIR [options]\n\n"
    "Trains the IR-SDE noise network (the conditional U-Net of universal image restoration) with the official\n"
    "recipe: batches from ROOT/train/<degradation>/{LQ,GT} (type = index mod #types, aligned random crops, flips\n"
    "and transpose); the frozen DA-CLIP gives each LQ patch's content and degradation embeddings (from its CLIP\n"
    "view); t uniform in 1..100; loss = L1 between the reverse-SDE mean with the predicted noise and the posterior\n"
    "mean; AdamW (betas 0.9/0.99, no weight decay), cosine annealing to --eta-min, EMA every --ema-every steps.\n"
    "Validation restores a few val images with the posterior sampler (100 steps, EMA weights) and reports\n"
    "PSNR/SSIM (the official evaluation, 4-px border) next to the degraded input's.\n\n"
    "--init fine-tunes existing weights (a model of ours, or the official universal-ir.pth read directly: the\n"
    "configuration comes from the file, every tensor must match). --no-daclip trains the plain IR-SDE (no prompt, no\n"
    "cross-attention): a preset's contexts are switched off.\n\n"
    "Writes DIR/model.safetensors (the EMA weights: the model to restore with), DIR/model_raw.safetensors (the\n"
    "raw weights), DIR/checkpoint.safetensors (weights, AdamW state, EMA, step; atomic), DIR/log.csv and\n"
    "DIR/loss.png (loss and validation PSNR). --resume continues a run bit-identically (give the same options).\n\n"
    "Data-parallel: `mpirun -np N daclip train-ir ...` splits every batch of --batch rows over N ranks (one machine\n"
    "or several) and trains what one process would (docs/distributed.md).\n";

int cmd_train_ir(int argc, char **argv) {
    const char *daclip = NULL, *data = NULL, *out = NULL, *val_data = NULL, *val_split = "val", *model = NULL,
               *init = NULL, *types = NULL, *vocab = NULL;
    bool no_daclip = false;
    int val_images = 8, val_crop = 256;
    IrTrainOptions o;
    ir_train_default_options(&o);
    const OptSpec specs[] = {
        {"--daclip", OPT_STR, &daclip, 0, 0, "FILE", "the frozen DA-CLIP (model.safetensors of train-daclip)"},
        {"--no-daclip", OPT_FLAG, &no_daclip, 0, 0, NULL, "the plain IR-SDE: no DA-CLIP, no prompt, no context"},
        {"--data", OPT_STR | OPT_REQUIRED, &data, 0, 0, "ROOT", "dataset root: ROOT/train/<degradation>/{LQ,GT}"},
        {"--out", OPT_STR | OPT_REQUIRED, &out, 0, 0, "DIR", "output folder"},
        {"--val-data", OPT_STR, &val_data, 0, 0, "ROOT", "validation dataset root (default: --data)"},
        {"--val-split", OPT_STR, &val_split, 0, 0, "NAME", "validation split folder (default val)"},
        {"--val-images", OPT_INT, &val_images, 0, 100000, "N", "images restored per validation (default 8; 0 = none)"},
        {"--val-crop", OPT_INT, &val_crop, 0, 1 << 16, "N", "validate on centre crops of N×N (default 256; 0 = whole images)"},
        {"--val-every", OPT_I64, &o.val_every, 0, 1e12, "N", "validate every N steps (default: at the end)"},
        {"--model", OPT_STR, &model, 0, 0, "NAME|FILE",
         "U-Net: small (default; nf 16: 1.2 M parameters, 0.9 M without DA-CLIP),\nuniversal (the released config), plain, "
         "or a JSON config with the official\noption names; a preset's context_dim follows the DA-CLIP's embedding size"},
        {"--init", OPT_STR, &init, 0, 0, "FILE", "fine-tune: start from these U-Net weights (ours, or the official\n.pth; the config comes from the file)"},
        {"--types", OPT_STR, &types, 0, 0, "A,B", "train (and validate) on these degradations only"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges of the DA-CLIP (default: the one it names)"},
        {"--batch", OPT_INT, &o.batch, 1, 65536, "N", "batch size (default 4; official 16)"},
        {"--patch", OPT_INT, &o.patch, 8, 1 << 14, "N", "patch side (default 128; official 256)"},
        {"--steps", OPT_I64, &o.steps, 1, 1e12, "N", "optimizer steps: the cosine schedule's length (default 10000)"},
        {"--lr", OPT_DOUBLE, &o.lr, 1e-12, 10, "X", "initial learning rate (default 2e-4)"},
        {"--eta-min", OPT_DOUBLE, &o.eta_min, 0, 10, "X", "final learning rate of the cosine annealing (default 1e-6)"},
        {"--ema", OPT_DOUBLE, &o.ema_beta, 0, 1, "X", "EMA beta (default 0.995)"},
        {"--ema-every", OPT_INT, &o.ema_every, 1, 1000000, "N", "EMA update every N steps (default 10)"},
        {"--ckpt-every", OPT_I64, &o.ckpt_every, 0, 1e12, "N", "checkpoint and write the models every N steps (default: at the end)"},
        {"--stop-at", OPT_I64, &o.stop_at, 0, 1e12, "N", "stop after step N of the schedule (resume later)"},
        {"--resume", OPT_STR, &o.resume, 0, 0, "FILE", "continue from DIR/checkpoint.safetensors " OPT_RESUME_HELP_TAIL},
        {"--seed", OPT_U64, &o.seed, 0, 0, "N", "weights, batches, t and noise (default 0)"},
        {"--loader-threads", OPT_INT, &o.loader_threads, 1, 64, "N", "image decoding threads (default 2)"},
        {"--quiet", OPT_FLAG, &o.quiet, 0, 0, NULL, "no progress bar"},
        {0}};
    int parsed = opts_parse("train-ir", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (no_daclip && daclip) return opts_fail("train-ir", "--no-daclip", "give either --daclip or --no-daclip");
    if (!no_daclip && !daclip) return opts_fail("train-ir", "--daclip", "required (or --no-daclip for the plain IR-SDE)");
    if (init && model) return opts_fail("train-ir", "--model", "the configuration comes from the --init file");
    char err[2048] = "";
    bool mask[DEGRADE_N];
    if (ir_types_parse(types, mask, err, sizeof err)) return opts_fail("train-ir", NULL, "%s", err);
    UNetConfig cfg;
    if (!init && ir_model_config(model, no_daclip, &cfg, err, sizeof err)) {
        if (!strncmp(err, "--model ", 8)) return opts_fail("train-ir", NULL, "%s", err);   /* not a preset or file */
        fprintf(stderr, "daclip train-ir: %s\n", err);
        return 1;
    }
    if (dist_init()) return 1;   /* under mpirun: one rank of a data-parallel job (docs/distributed.md) */
    t_init();
    int rc = 1;
    bool root = dist_is_root();   /* rank 0 reports; every rank reports its errors */
    DaclipModel dm;
    bool have_daclip = false;
    Dataset train = {0}, vds = {0};
    IrValSet val = {0};
    IrModel m = {0};
    bool have_model = false;
    if (daclip) {
        if (daclip_model_load(daclip, vocab, &dm, err, sizeof err)) {
            fprintf(stderr, "daclip train-ir: %s\n", err);
            goto done;
        }
        have_daclip = true;
        params_freeze(&dm.ps, "", true);   /* frozen: no gradient buffers */
        daclip_model_prepack(&dm);         /* and only ever run forward */
    }
    UNetConfig preset;
    if (have_daclip && !init && unet_config_preset(model ? model : "small", &preset) == 0 && ir_model_uses_context(&cfg) &&
        cfg.context_dim != dm.clip.cfg.vision.embed_dim) {   /* a preset is a family: fit it to this DA-CLIP */
        if (root)
            fprintf(stderr, "note: --model %s with context_dim %d, the embedding size of %s (the preset has %d)\n",
                    model ? model : "small", dm.clip.cfg.vision.embed_dim, daclip, cfg.context_dim);
        cfg.context_dim = dm.clip.cfg.vision.embed_dim;
    }
    char model_name[300];
    snprintf(model_name, sizeof model_name, "--model %s", model ? model : "small");
    if (ir_model_init(&m, &cfg, init, model_name, have_daclip ? &dm : NULL, daclip, o.seed, err, sizeof err)) {
        fprintf(stderr, "daclip train-ir: %s\n", err);
        goto done;
    }
    have_model = true;
    if (root && have_daclip && !m.daclip)
        fprintf(stderr, "note: the U-Net uses no DA-CLIP embedding (no prompt, no context): %s is not used\n", daclip);
    if (ir_dataset_open(data, "train", mask, &train, err, sizeof err)) {
        fprintf(stderr, "daclip train-ir: %s\n", err);
        goto done;
    }
    const char *vroot = val_data ? val_data : data;
    if (val_images > 0) {
        char vdir[4200];
        snprintf(vdir, sizeof vdir, "%s/%s", vroot, val_split);
        bool asked = val_data || strcmp(val_split, "val");
        if (ir_dataset_open(vroot, val_split, mask, &vds, err, sizeof err) ||
            ir_val_load(&m, &vds, val_images, val_crop, &val, err, sizeof err)) {
            if (asked) {
                fprintf(stderr, "daclip train-ir: %s\n", err);
                goto done;
            }
            if (root) fprintf(stderr, "note: no validation (%s)\n", err);
            val_images = 0;
        }
    }
    int counts = 0;
    for (int t = 0; t < DEGRADE_N; t++) counts += dataset_type_count(&train, t) > 0;
    if (root)
        fprintf(stderr, "U-Net %s (nf %d, %d levels, context %s): %lld parameters; %d training pairs of %d degradation%s; "
                "%d validation images\n", init ? init : model ? model : "small", m.cfg.nf, m.cfg.depth,
                m.daclip ? "DA-CLIP" : "none", (long long)params_count(&m.ps, "", true), train.n, counts,
                counts == 1 ? "" : "s", val_images > 0 ? val.n : 0);
    o.out_dir = out;
    IrTrainResult r;
    if (ir_train(&m, &train, val_images > 0 ? &val : NULL, &o, &r) == 0) {
        if (root) {
            printf("final train loss %.5f (first %.5f)", r.last_loss, r.first_loss);
            if (val_images > 0)
                printf(", val PSNR %.2f dB SSIM %.4f (degraded input %.2f dB %.4f)", r.val_psnr, r.val_ssim, r.lq_psnr,
                       r.lq_ssim);
            printf(", %.2f images/s\nwrote %s/model.safetensors (EMA) and %s/model_raw.safetensors\n", r.images_per_s,
                   out, out);
        }
        rc = out_close_stdout("train-ir");
    }
done:
    ir_val_free(&val);
    dataset_free(&train);
    dataset_free(&vds);
    if (have_model) ir_model_free(&m);
    if (have_daclip) daclip_model_free(&dm);
    t_arena_shutdown();
    return dist_finish("train-ir", rc);
}
