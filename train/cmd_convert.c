/* daclip convert: an official PyTorch checkpoint (.pt/.pth) -> a daclip model file (safetensors + config). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/pt_state_dict.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "train/clip_io.h"
#include "train/commands.h"
#include "train/daclip_model.h"
#include "train/options.h"
#include "train/progress.h"
#include "train/pt_import.h"

static const char usage_head[] =
    "usage: daclip convert IN.pt OUT.safetensors [--config FILE.json] [--vocab FILE] [--f16]\n"
    "       daclip convert --f16 IN.safetensors OUT.safetensors\n"
    "       daclip convert --list IN.pt\n\n"
    "Reads a PyTorch checkpoint without running any of its code (only the pickle opcodes and the few globals a\n"
    "state dict needs are accepted) and writes a daclip model file: the official DA-CLIP checkpoint\n"
    "(daclip_ViT-B-32.pt: its state_dict, \"module.\" stripped, the visual.* alias dropped, the optimizer state never\n"
    "read), an open_clip CLIP, or an IR-SDE ConditionalUNet (universal-ir.pth). The configuration comes from the\n"
    "tensors' shapes, or from --config: open_clip's model-config JSON for (DA-)CLIP, the options' network_G.setting\n"
    "block as JSON for the U-Net. Every model command also reads .pt/.pth directly; converting once saves the\n"
    "conversion at every start. --list prints every tensor of the file: name, dtype, shape.\n"
    "--f16 stores the tensors in half precision (half the size; every command reads it back to F32): a\n"
    "daclip model file is rewritten so, names and metadata unchanged (how models/ is shipped).\n";

static int list(const char *path) {
    PtFile *f = pt_open(path);
    if (!f) {
        fprintf(stderr, "daclip convert: %s\n", t_errmsg());
        return 1;
    }
    for (int i = 0; i < pt_count(f); i++) {
        const PtEntry *e = pt_entry(f, i);
        printf("%s\t%s\t[", e->name, pt_dtype_name(e->dtype));
        for (int k = 0; k < e->ndim; k++) printf("%s%lld", k ? ", " : "", (long long)e->shape[k]);
        printf("]\n");
    }
    pt_close(f);
    return out_close_stdout("convert");
}

/* A daclip model file rewritten tensor by tensor (names and metadata kept), in F16 or back in F32. */
static int resave(const char *in, const char *out, bool f16) {
    StFile *f = st_open(in);
    if (!f) {
        fprintf(stderr, "daclip convert: %s\n", t_errmsg());
        return 1;
    }
    const char **names = calloc((size_t)f->n + 1, sizeof *names);
    Tensor **ts = calloc((size_t)f->n + 1, sizeof *ts);
    int rc = 1;
    if (names && ts) {
        int64_t count = 0;
        for (int i = 0; i < f->n; i++) {
            const StEntry *e = &f->entries[i];
            ts[i] = t_param_new(e->ndim, e->shape, false);
            memcpy(ts[i]->data, e->data, sizeof(float) * (size_t)t_numel(ts[i]));
            names[i] = e->name;
            count += t_numel(ts[i]);
        }
        if ((f16 ? st_save_f16 : st_save)(out, f->n, names, ts, f->metadata_json))
            fprintf(stderr, "daclip convert: %s\n", t_errmsg());
        else {
            fprintf(stderr, "%s: %d tensors, %lld parameters, written as %s\n", in, f->n, (long long)count,
                    f16 ? "F16" : "F32");
            rc = 0;
        }
        for (int i = 0; i < f->n; i++) t_free(ts[i]);
    } else {
        fprintf(stderr, "daclip convert: out of memory\n");
    }
    free(names);
    free(ts);
    st_close(f);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const char *config = NULL, *vocab = NULL;
    bool do_list = false, f16 = false;
    const OptSpec specs[] = {
        {"--config", OPT_STR, &config, 0, 0, "FILE", "the configuration as JSON (default: from the shapes)"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE", "BPE merges for a (DA-)CLIP (default: the official, shipped)"},
        {"--list", OPT_FLAG, &do_list, 0, 0, NULL, "print the tensors of IN.pt and stop"},
        {"--f16", OPT_FLAG, &f16, 0, 0, NULL, "write the tensors in F16 (half the size)"},
        {0}};
    char **pos;
    int npos;
    int parsed = opts_parse("convert", usage_head, specs, argc, argv, &pos, &npos);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (do_list) return npos == 1 ? list(pos[0]) : opts_fail("convert", "--list", "give one checkpoint");
    if (npos != 2) return opts_fail("convert", NULL, "give IN.pt and OUT.safetensors (see --help)");
    const char *in = pos[0], *out = pos[1];
    if (pt_is_checkpoint_path(out)) return opts_fail("convert", NULL, "%s: the output is a safetensors file", out);
    t_init();
    if (!pt_is_checkpoint_path(in)) {
        if (config || vocab) return opts_fail("convert", config ? "--config" : "--vocab", "only for a .pt/.pth input");
        int rc = resave(in, out, f16);
        t_arena_shutdown();
        return rc;
    }
    PtStateDict sd;
    if (pt_state_dict_open(in, &sd)) {
        fprintf(stderr, "daclip convert: %s\n", t_errmsg());
        return 1;
    }
    PtKind kind = pt_state_dict_kind(&sd);
    int dropped = sd.aliases_dropped, n = sd.n;
    pt_state_dict_close(&sd);
    char err[2048] = "";
    int rc = 1;
    double t0 = progress_now();
    if (kind == PT_KIND_DACLIP || kind == PT_KIND_CLIP) {
        DaclipModel m;
        int r = kind == PT_KIND_DACLIP ? daclip_model_load_config(in, vocab, config, &m, err, sizeof err)
                                       : daclip_model_from_clip(in, vocab, false, &m, err, sizeof err);
        if (r) {
            fprintf(stderr, "daclip convert: %s\n", err);
            return 1;
        }
        if (kind == PT_KIND_DACLIP) {
            r = daclip_model_save(&m, out);
        } else {
            /* the CLIP alone, with open_clip's names and the CLIP metadata train-clip writes */
            ParamSet clip_only;
            params_init(&clip_only);
            for (int i = 0; i < m.ps.n; i++)
                if (!strncmp(m.ps.items[i].name, "clip.", 5)) {
                    Tensor *t = t_param_new(m.ps.items[i].t->ndim, m.ps.items[i].t->shape, false);
                    memcpy(t->data, m.ps.items[i].t->data, sizeof(float) * (size_t)t_numel(t));
                    params_add(&clip_only, m.ps.items[i].name + 5, t);
                }
            char meta[6000];
            r = clip_model_meta(&m.clip.cfg, m.vocab, meta, sizeof meta) || params_save_file(&clip_only, out, meta);
            params_free(&clip_only);
        }
        if (r) fprintf(stderr, "daclip convert: %s\n", t_errmsg());
        else {
            fprintf(stderr, "%s: %s (%s), %d tensors (%d alias%s dropped), %lld parameters\n", in,
                    kind == PT_KIND_DACLIP ? "DA-CLIP" : "CLIP", m.clip.cfg.name, n, dropped, dropped == 1 ? "" : "es",
                    (long long)params_count(&m.ps, kind == PT_KIND_DACLIP ? "" : "clip.", false));
            rc = 0;
        }
        daclip_model_free(&m);
    } else if (kind == PT_KIND_UNET) {
        ConditionalUNet u;
        ParamSet ps;
        UNetConfig cfg;
        if (unet_model_open(in, config, &u, &ps, &cfg, err, sizeof err)) {
            fprintf(stderr, "daclip convert: %s\n", err);
            return 1;
        }
        if (unet_save_file(&ps, &cfg, out)) fprintf(stderr, "daclip convert: %s\n", t_errmsg());
        else {
            fprintf(stderr, "%s: ConditionalUNet (nf %d, %d levels, context %d), %d tensors, %lld parameters\n", in, cfg.nf,
                    cfg.depth, cfg.context_dim, n, (long long)params_count(&ps, "", false));
            rc = 0;
        }
        params_free(&ps);
    } else {
        fprintf(stderr, "daclip convert: %s: neither a DA-CLIP, a CLIP nor an IR-SDE U-Net state dict "
                        "(see `daclip convert --list %s`)\n", in, in);
    }
    if (!rc && f16) rc = resave(out, out, true);   /* the F32 file just written, in F16 */
    if (!rc) printf("wrote %s (%.1f s)\n", out, progress_now() - t0);
    t_arena_shutdown();
    if (out_close_stdout("convert")) rc = 1;
    return rc;
}
