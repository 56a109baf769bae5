#ifndef DACLIP_TRAIN_EVAL_HTML_H
#define DACLIP_TRAIN_EVAL_HTML_H
/* The eval-ir report as one HTML page (DIR/index.html): the per-type table (degraded input vs restored,
 * DA-CLIP's accuracy) and, per image, the degraded input, the restoration and the ground truth side by side
 * with DA-CLIP's guess and the scores. Images are linked by paths relative to the page (computed from the
 * real paths), so the page keeps working when the output and data folders move together; nothing is copied. */
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;        /* degradation folder, or "all" */
    int n;
    double lq_psnr, lq_ssim, psnr, ssim;
    double acc;              /* DA-CLIP accuracy in [0, 1]; < 0: not classified */
} EvalHtmlType;

typedef struct {
    const char *type, *lq, *restored, *gt;   /* paths as eval-ir opened them */
    const char *predicted;   /* DA-CLIP's degradation, or NULL */
    double prob;
    double lq_psnr, lq_ssim, psnr, ssim;
} EvalHtmlImage;

/* Writes the page atomically; -1 with a message on stderr naming the file. grid: a picture in the page's
 * folder shown at the top (NULL for none). */
int eval_html_write(const char *path, const char *title, const char *subtitle, const EvalHtmlType *types,
                    int ntypes, const EvalHtmlImage *images, int nimages, const char *grid);

/* The path of `target` relative to the folder `from_dir` ("../data/x.png"); both must exist. 0 or -1. */
int path_relative(const char *from_dir, const char *target, char *out, size_t n);

#endif
