/* daclip encode: CLIP embeddings of a folder of images (or of texts) as CSV. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/image_io.h"
#include "nn/contrastive.h"
#include "tensor/ops.h"
#include "train/clip_io.h"
#include "train/commands.h"
#include "train/daclip_model.h"
#include "train/options.h"
#include "train/progress.h"

static const char usage_head[] =
    "usage: daclip encode --model M.safetensors (--images DIR | --text TEXT...) [--out FILE.csv]\n"
    "                    [--vocab FILE] [--normalize]\n\n"
    "Writes one CSV row per image (or text): the name, then the E embedding values (unnormalised unless\n"
    "--normalize). Output goes to stdout unless --out is given. With --text, every argument that is not\n"
    "an option is a text (put texts that start with '-' after --). --out is replaced only when every row\n"
    "was written; an image that cannot be read or non-finite model output is an error (exit 1).\n"
    "With a DA-CLIP model (train-daclip's model.safetensors), an image row holds 2E values: the content\n"
    "embedding (the frozen CLIP steered by the controller), then the degradation embedding; texts are encoded\n"
    "by its frozen CLIP text tower.\n";

static void write_row(FILE *out, const char *name, const float *v, int64_t E) {
    fputc('"', out);
    for (const char *c = name; *c; c++) {
        if (*c == '"') fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
    for (int64_t k = 0; k < E; k++) fprintf(out, ",%.7g", v[k]);
    fputc('\n', out);
}

int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *dir = NULL, *outp = NULL, *vocab = NULL;
    bool text = false, normalize = false;
    const OptSpec specs[] = {
        {"--model", OPT_STR | OPT_REQUIRED, &model, 0, 0, "FILE", "model.safetensors of train-clip or train-daclip"},
        {"--images", OPT_STR, &dir, 0, 0, "DIR", "encode the .png/.jpg images in DIR (sorted by name)"},
        {"--text", OPT_FLAG, &text, 0, 0, NULL, "encode the TEXT arguments instead"},
        {"--out", OPT_STR, &outp, 0, 0, "FILE", "write the CSV to FILE (default: stdout)"},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE",
         "BPE merges (default: the one the model names, else $DACLIP_VOCAB,\nelse the official file)"},
        {"--normalize", OPT_FLAG, &normalize, 0, 0, NULL, "L2-normalise every embedding"},
        {0}};
    char **texts;
    int n_texts;
    int parsed = opts_parse("encode", usage_head, specs, argc, argv, &texts, &n_texts);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    if (!text && n_texts > 0) return opts_fail("encode", texts[0], "unexpected argument (texts need --text)");
    if (!dir == !text)
        return opts_fail("encode", NULL, "give either --images DIR or --text TEXT...; see 'daclip encode --help'");
    if (text && n_texts == 0) return opts_fail("encode", "--text", "no texts given");
    /* a CLIP, or a DA-CLIP whose frozen CLIP encodes the texts */
    ClipModel cm = {0};
    DaclipModel dm = {0};
    bool is_daclip = daclip_file_is_daclip(model);
    if (is_daclip) {
        char err[2048] = "";
        t_init();
        if (daclip_model_load(model, vocab, &dm, err, sizeof err)) {
            fprintf(stderr, "daclip encode: %s\n", err);
            return 1;
        }
    } else if (clip_model_open(&cm, model, vocab, "encode")) {
        return 1;
    }
    if (is_daclip) daclip_model_prepack(&dm);   /* inference only from here */
    else vit_prepack(&cm.m.visual);
    const Clip *clip = is_daclip ? &dm.clip : &cm.m;
    Tokenizer *tok = is_daclip ? dm.tok : cm.tok;
    /* --out is written to a temporary and renamed only when every row is there */
    DataOutFile file = {0};
    FILE *out = stdout;
    int rc = 0;
    if (outp) {
        if (data_out_open(&file, outp)) {
            fprintf(stderr, "daclip encode: %s\n", data_error());
            rc = 1;
            goto done;
        }
        out = file.fp;
    }
    t_set_grad_enabled(false);
    int64_t E = clip->cfg.vision.embed_dim;
    int S = clip->cfg.vision.image_size, L = clip->cfg.context_length;
    if (text) {
        for (int i = 0; i < n_texts; i++) {
            size_t mark = t_arena_mark();
            int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)L);
            tokenizer_tokenize_n(tok, texts[i], ids, L);
            Tensor *f = clip_encode_text(clip, ids, 1);
            if (normalize) f = nn_l2_normalize(f);
            if (!clip_all_finite(f->data, E)) {
                fprintf(stderr, "daclip encode: text \"%s\": the model gives non-finite values (damaged weights in %s?)\n",
                        texts[i], model);
                rc = 1;
            } else {
                write_row(out, texts[i], f->data, E);
            }
            t_arena_release(mark);
        }
    } else {
        char **paths;
        int n;
        if (dataset_list_images(dir, &paths, &n)) {
            fprintf(stderr, "daclip encode: %s\n", data_error());
            rc = 1;
            goto done;
        }
        if (n == 0) {   /* an empty CSV and exit 0 would look like success */
            fprintf(stderr, "daclip encode: %s: no .png/.jpg/.jpeg images found\n", dir);
            dataset_free_list(paths, n);
            rc = 1;
            goto done;
        }
        Progress bar;
        progress_begin(&bar, "encode", n, "img");
        const char *nl = bar.is_tty ? "\n" : "";   /* off the progress line */
        for (int i = 0; i < n; i++) {
            size_t mark = t_arena_mark();
            Image im = {0};
            Tensor *img = t_new(T_SHAPE(1, 3, S, S));
            if (image_load(paths[i], &im)) {
                fprintf(stderr, "%sdaclip encode: skipping: %s\n", nl, data_error());
                rc = 1;
            } else if (clip_preprocess(&im, S, img->data)) {
                fprintf(stderr, "%sdaclip encode: skipping %s: %s\n", nl, paths[i], data_error());
                rc = 1;
            } else {
                Tensor *f, *degra = NULL;
                if (is_daclip) daclip_encode_image(&dm.ctl, &dm.clip.visual, img, &f, &degra);   /* [1, E] each */
                else f = clip_encode_image(clip, img, NULL, NULL);                                /* [1, E] */
                if (normalize) f = nn_l2_normalize(f), degra = degra ? nn_l2_normalize(degra) : NULL;
                if (degra) f = t_concat(2, (Tensor *[]){f, degra}, 1);                            /* [1, 2E] */
                int64_t width = degra ? 2 * E : E;
                const char *base = strrchr(paths[i], '/');
                if (!clip_all_finite(f->data, width)) {
                    fprintf(stderr, "%sdaclip encode: %s: the model gives non-finite values (damaged weights in %s?)\n",
                            nl, paths[i], model);
                    rc = 1;
                } else {
                    write_row(out, base ? base + 1 : paths[i], f->data, width);
                }
            }
            image_free(&im);
            t_arena_release(mark);
            progress_update(&bar, i + 1, NULL);
        }
        progress_end(&bar);
        dataset_free_list(paths, n);
    }
done:
    if (file.fp) {
        if (rc) {   /* a failed run does not replace an earlier good file */
            fprintf(stderr, "daclip encode: %s not written because of the errors above\n", outp);
            data_out_abort(&file);
        } else if (data_out_commit(&file)) {
            fprintf(stderr, "daclip encode: %s\n", data_error());
            rc = 1;
        }
    }
    if (is_daclip) {
        daclip_model_free(&dm);
        t_arena_shutdown();
    } else {
        clip_model_close(&cm);
    }
    if (out_close_stdout("encode")) rc = 1;
    return rc;
}
