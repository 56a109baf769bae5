/* daclip train-clip: contrastive training of a CLIP on a dataset CSV (filepath<TAB>title). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "tensor/tensor.h"
#include "train/clip_io.h"
#include "train/clip_train.h"
#include "train/commands.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: daclip train-clip --train CSV --out DIR [options]\n\n"
            "Trains a CLIP (image + text towers) from scratch with the symmetric contrastive loss on a dataset\n"
            "CSV as written by `daclip make-dataset` (tab-separated filepath, title). Writes DIR/model.safetensors\n"
            "(open_clip names + config), DIR/checkpoint.safetensors (full training state, atomic) and DIR/log.csv.\n\n"
            "options:\n"
            "  --train CSV        training rows (required)\n"
            "  --val CSV          validation rows: loss and image->text top-1\n"
            "  --root DIR         resolve relative image paths against DIR (default: the CSV's folder)\n"
            "  --out DIR          output folder (required)\n"
            "  --model NAME       tiny | small | ViT-B-32 (default tiny)\n"
            "  --vocab FILE       BPE merges (default: $DACLIP_VOCAB, else the official file if present)\n"
            "  --steps N          optimizer steps (default 1000)\n"
            "  --batch N          batch size (default 64)\n"
            "  --lr X             peak learning rate (default 5e-4)\n"
            "  --wd X             weight decay of >=2-D non-norm, non-bias weights (default 0.05)\n"
            "  --warmup N         linear warmup steps before the cosine decay (default 100)\n"
            "  --seed N           initialisation and batch-order seed (default 0)\n"
            "  --val-every N      validate every N steps (default: at the end)\n"
            "  --ckpt-every N     checkpoint every N steps (default: at the end)\n"
            "  --resume FILE      continue from a checkpoint.safetensors (same options)\n");
}

static char *dir_of(const char *path) {
    char *d = strdup(path);
    char *s = strrchr(d, '/');
    if (s)
        *s = 0;
    else
        strcpy(d, ".");
    return d;
}

int cmd_train_clip(int argc, char **argv) {
    const char *train_csv = NULL, *val_csv = NULL, *root = NULL, *out = NULL, *model = "tiny", *vocab = NULL;
    ClipTrainOptions o;
    clip_train_default_options(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "daclip train-clip: %s needs a value (see --help)\n", a);
            return 1;
        }
        i++;
        if (!strcmp(a, "--train")) train_csv = v;
        else if (!strcmp(a, "--val")) val_csv = v;
        else if (!strcmp(a, "--root")) root = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--vocab")) vocab = v;
        else if (!strcmp(a, "--steps")) o.steps = atoll(v);
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else if (!strcmp(a, "--lr")) o.lr = atof(v);
        else if (!strcmp(a, "--wd")) o.weight_decay = atof(v);
        else if (!strcmp(a, "--warmup")) o.warmup = atoll(v);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--val-every")) o.val_every = atoll(v);
        else if (!strcmp(a, "--ckpt-every")) o.ckpt_every = atoll(v);
        else if (!strcmp(a, "--resume")) o.resume = v;
        else {
            fprintf(stderr, "daclip train-clip: unknown option %s (see --help)\n", a);
            return 1;
        }
    }
    if (!train_csv || !out) {
        usage(stderr);
        return 1;
    }
    if (o.steps <= 0 || o.batch < 2 || !(o.lr > 0) || o.warmup < 0) {
        fprintf(stderr, "daclip train-clip: --steps and --lr must be positive, --batch at least 2\n");
        return 1;
    }
    ClipConfig cfg;
    if (clip_config_preset(model, &cfg)) {
        fprintf(stderr, "daclip train-clip: unknown model '%s' (tiny, small, ViT-B-32)\n", model);
        return 1;
    }
    vocab = clip_vocab_path(vocab);
    if (!vocab) {
        fprintf(stderr, "daclip train-clip: no vocabulary: pass --vocab FILE (the official bpe_simple_vocab_16e6.txt.gz,\n"
                        "or one made with `daclip tokenizer train`)\n");
        return 1;
    }
    char err[1024];
    Tokenizer *tok = tokenizer_load(vocab, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "daclip train-clip: %s\n", err);
        return 1;
    }
    cfg.vocab_size = tokenizer_vocab_size(tok);
    t_init();
    char *troot = root ? strdup(root) : dir_of(train_csv);
    char *vroot = root ? strdup(root) : (val_csv ? dir_of(val_csv) : NULL);
    ClipSamples train = {0}, val = {0};
    int rc = 1;
    fprintf(stderr, "loading %s ...\n", train_csv);
    if (clip_samples_from_csv(train_csv, troot, tok, cfg.vision.image_size, cfg.context_length, &train, err, sizeof err)) {
        fprintf(stderr, "daclip train-clip: %s\n", err);
        goto done;
    }
    if (val_csv &&
        clip_samples_from_csv(val_csv, vroot, tok, cfg.vision.image_size, cfg.context_length, &val, err, sizeof err)) {
        fprintf(stderr, "daclip train-clip: %s\n", err);
        goto done;
    }
    char meta[6000];
    if (clip_model_meta(&cfg, vocab, meta, sizeof meta)) {
        fprintf(stderr, "daclip train-clip: the vocabulary path cannot be recorded (quotes or control characters)\n");
        goto done;
    }
    o.out_dir = out;
    o.model_meta = meta;
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, o.seed);
    Clip m;
    if (clip_init(&m, &ps, "", &cfg, &rng) == 0) {
        fprintf(stderr, "model %s: %lld parameters; %lld training and %lld validation samples\n", cfg.name,
                (long long)params_count(&ps, "", true), (long long)train.n, (long long)val.n);
        ClipTrainResult r;
        rc = clip_train(&m, &ps, &train, val_csv ? &val : NULL, &o, &r) ? 1 : 0;
        if (!rc) {
            printf("final train loss %.4f (first %.4f)", r.train_loss, r.first_loss);
            if (val_csv) printf(", val loss %.4f, val image->text top-1 %.2f%%", r.val_loss, 100 * r.val_top1);
            printf(", %.1f images/s\nwrote %s/model.safetensors\n", r.images_per_s, out);
        }
        clip_free(&m);
    }
    params_free(&ps);
done:
    clip_samples_free(&train);
    clip_samples_free(&val);
    free(troot);
    free(vroot);
    tokenizer_free(tok);
    t_arena_shutdown();
    return rc;
}
