#include "train/eval_html.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/file_io.h"
#include "data/image_io.h"

int path_relative(const char *from_dir, const char *target, char *out, size_t n) {
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(from_dir, a) || !realpath(target, b)) return -1;
    size_t i = 0;
    while (a[i] && a[i] == b[i]) i++;
    size_t common = i;   /* a[0..common) is a folder both lie in: end on a '/' boundary of both */
    if (!((a[i] == '\0' || a[i] == '/') && (b[i] == '\0' || b[i] == '/')))
        while (common > 0 && a[common] != '/') common--;
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = a + common; *p; p++)   /* one "../" per folder of from_dir below the common one */
        if (*p == '/' && p[1]) {
            if (len + 4 > n) return -1;
            memcpy(out + len, "../", 4), len += 3;
        }
    const char *rest = b + common + (b[common] == '/');
    if (len + strlen(rest) + 1 > n) return -1;
    memcpy(out + len, rest, strlen(rest) + 1);
    return 0;
}

static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* a relative link, each path segment percent-encoded where a URL needs it */
static void put_link(FILE *f, const char *page_dir, const char *target) {
    char rel[PATH_MAX];
    if (path_relative(page_dir, target, rel, sizeof rel)) snprintf(rel, sizeof rel, "%s", target);
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("/._-~", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

static void put_cell(FILE *f, const char *page_dir, const char *img, const char *caption, const char *scores,
                     bool better) {
    fputs("<td><img src=\"", f);
    put_link(f, page_dir, img);
    fputs("\" loading=\"lazy\"><br>", f);
    put_escaped(f, caption);
    if (scores) fprintf(f, "<br><span class=\"%s\">%s</span>", better ? "up" : "plain", scores);
    fputs("</td>", f);
}

int eval_html_write(const char *path, const char *title, const char *subtitle, const EvalHtmlType *types,
                    int ntypes, const EvalHtmlImage *images, int nimages, const char *grid) {
    char page_dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(page_dir, sizeof page_dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    DataOutFile o;
    if (data_out_open(&o, path)) {
        fprintf(stderr, "daclip: %s\n", data_error());
        return -1;
    }
    FILE *f = o.fp;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    put_escaped(f, title);
    fputs("</title>\n<style>\nbody{font-family:sans-serif;margin:2em;color:#222}\n"
          "table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;text-align:right;border-bottom:1px solid #ddd}\n"
          "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\n"
          ".images td{text-align:center;vertical-align:top;font-size:90%}\n"
          ".images img{width:192px;image-rendering:pixelated}\n.up{color:#080;font-weight:bold}.plain{color:#555}\n"
          ".down{color:#b00}\n</style></head>\n<body>\n<h1>", f);
    put_escaped(f, title);
    fputs("</h1>\n", f);
    if (subtitle) {
        fputs("<p>", f);
        put_escaped(f, subtitle);
        fputs("</p>\n", f);
    }
    fputs("<table><tr><th>degradation</th><th>images</th><th>PSNR degraded</th><th>PSNR restored</th>"
          "<th>SSIM degraded</th><th>SSIM restored</th><th>DA-CLIP accuracy</th></tr>\n", f);
    for (int t = 0; t < ntypes; t++) {
        const EvalHtmlType *r = &types[t];
        fputs("<tr><td>", f);
        put_escaped(f, r->name);
        fprintf(f, "</td><td>%d</td><td>%.2f</td><td class=\"%s\">%.2f</td><td>%.3f</td><td class=\"%s\">%.3f</td>", r->n,
                r->lq_psnr, r->psnr > r->lq_psnr ? "up" : "down", r->psnr, r->lq_ssim, r->ssim > r->lq_ssim ? "up" : "down",
                r->ssim);
        if (r->acc >= 0) fprintf(f, "<td>%.0f%%</td></tr>\n", 100.0 * r->acc);
        else fputs("<td>-</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (grid) {
        fputs("<p><a href=\"", f);
        put_link(f, page_dir, grid);
        fputs("\">comparison grid (PNG)</a></p>\n", f);
    }
    fputs("<table class=\"images\"><tr><th>degraded</th><th>restored</th><th>clean</th></tr>\n", f);
    for (int i = 0; i < nimages; i++) {
        const EvalHtmlImage *m = &images[i];
        char cap[320], lq[96], out[96];
        snprintf(lq, sizeof lq, "PSNR %.2f / SSIM %.3f", m->lq_psnr, m->lq_ssim);
        snprintf(out, sizeof out, "PSNR %.2f / SSIM %.3f", m->psnr, m->ssim);
        if (m->predicted) snprintf(cap, sizeof cap, "%s (DA-CLIP: %s, %.0f%%)", m->type, m->predicted, 100.0 * m->prob);
        else snprintf(cap, sizeof cap, "%s", m->type);
        fputs("<tr>", f);
        put_cell(f, page_dir, m->lq, cap, lq, false);
        put_cell(f, page_dir, m->restored, "restored", out, m->psnr > m->lq_psnr);
        put_cell(f, page_dir, m->gt, "clean", NULL, false);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</body></html>\n", f);
    if (data_out_commit(&o)) {
        fprintf(stderr, "daclip: %s\n", data_error());
        return -1;
    }
    return 0;
}
