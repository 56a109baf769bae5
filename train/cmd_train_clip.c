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
#include "train/dist.h"
#include "train/options.h"
#include "train/paths.h"

static const char usage_head[] =
    "usage: daclip train-clip --train CSV --out DIR [options]\n\n"
    "Trains a CLIP (image + text towers) from scratch with the symmetric contrastive loss on a dataset\n"
    "CSV as written by `daclip make-dataset` (tab-separated filepath, title). Writes DIR/model.safetensors\n"
    "(open_clip names + config), DIR/checkpoint.safetensors (full training state, atomic) and DIR/log.csv.\n"
    "Images are decoded batch by batch in the background while training runs, so memory holds --prefetch\n"
    "batches of images whatever the dataset size; every file must exist at the start, and one that cannot be\n"
    "decoded stops the run naming the CSV line and the file (the last checkpoint stays).\n\n"
    "Data-parallel: `mpirun -np N daclip train-clip ...` splits every batch of --batch rows over N ranks and\n"
    "trains what one process would (the contrastive loss sees the whole batch; docs/distributed.md).\n";

int cmd_train_clip(int argc, char **argv) {
    const char *train_csv = NULL, *val_csv = NULL, *root = NULL, *out = NULL, *model = "tiny", *vocab = NULL;
    ClipTrainOptions o;
    clip_train_default_options(&o);
    const OptSpec specs[] = {
        {"--train", OPT_STR | OPT_REQUIRED, &train_csv, 0, 0, "CSV", "training rows"},
        {"--val", OPT_STR, &val_csv, 0, 0, "CSV", "validation rows: loss and image->text top-1"},
        {"--root", OPT_STR, &root, 0, 0, "DIR", "resolve relative image paths against DIR\n(default: the CSV's folder)"},
        {"--out", OPT_STR | OPT_REQUIRED, &out, 0, 0, "DIR", "output folder"},
        {"--model", OPT_STR, &model, 0, 0, "NAME", "tiny | tiny-128 | tiny-128-deep | small | ViT-B-32\n(default tiny)"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges (default: $DACLIP_VOCAB, else the official file)"},
        {"--steps", OPT_I64, &o.steps, 1, 1e12, "N", "optimizer steps (default 1000)"},
        {"--batch", OPT_INT, &o.batch, 2, 65536, "N", "batch size (default 64)"},
        {"--lr", OPT_DOUBLE, &o.lr, 0, 10, "X", "peak learning rate, > 0 (default 5e-4)"},
        {"--wd", OPT_DOUBLE, &o.weight_decay, 0, 10, "X", "weight decay of >=2-D non-norm, non-bias weights\n(default 0.05)"},
        {"--warmup", OPT_I64, &o.warmup, 0, 1e12, "N", "linear warmup steps before the cosine decay (default 100)"},
        {"--seed", OPT_U64, &o.seed, 0, 0, "N", "initialisation and batch-order seed (default 0)"},
        {"--val-every", OPT_I64, &o.val_every, 0, 1e12, "N", "validate every N steps (default 0: at the end)"},
        {"--ckpt-every", OPT_I64, &o.ckpt_every, 0, 1e12, "N", "checkpoint every N steps (default 0: at the end)"},
        {"--resume", OPT_STR, &o.resume, 0, 0, "FILE", "continue from a checkpoint.safetensors " OPT_RESUME_HELP_TAIL},
        {"--loader-threads", OPT_INT, &o.loader_threads, 1, 64, "N", "image decoding threads (default 2)"},
        {"--prefetch", OPT_INT, &o.prefetch, 1, 64, "N", "batches of images held in memory, decoded ahead\n(default 3)"},
        {0}};
    int parsed = opts_parse("train-clip", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (!(o.lr > 0)) return opts_fail("train-clip", "--lr", "must be positive");
    ClipConfig cfg;
    if (clip_config_preset(model, &cfg))
        return opts_fail("train-clip", "--model", "unknown model '%s' (tiny, tiny-128, tiny-128-deep, small, ViT-B-32)", model);
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
    if (dist_init()) {   /* under mpirun: one rank of a data-parallel job (docs/distributed.md) */
        tokenizer_free(tok);
        return 1;
    }
    t_init();
    bool rank0 = dist_is_root();   /* rank 0 reports; every rank reports its errors */
    char *troot = path_root_for(root, train_csv);
    char *vroot = val_csv ? path_root_for(root, val_csv) : NULL;
    ClipSamples train = {0}, val = {0};
    int rc = 1;
    if (rank0) fprintf(stderr, "reading %s ...\n", train_csv);
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
        if (rank0)
            fprintf(stderr, "model %s: %lld parameters; %lld training and %lld validation samples\n", cfg.name,
                    (long long)params_count(&ps, "", true), (long long)train.n, (long long)val.n);
        ClipTrainResult r;
        rc = clip_train(&m, &ps, &train, val_csv ? &val : NULL, &o, &r) ? 1 : 0;
        if (!rc && rank0) {
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
    return dist_finish("train-clip", rc);
}
