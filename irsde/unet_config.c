/* ConditionalUNet configuration: presets, validation, and the JSON metadata of model files. The JSON is
 * parsed by the safetensors metadata reader (a real parser: strings unescaped, other keys skipped); the
 * string values are then parsed strictly here (whole string, in range). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irsde/unet.h"

#define MAX_IO_NC 64
#define MAX_NF 1024
#define MAX_MULT 64
#define MAX_CHANNELS 4096
#define MAX_CONTEXT 8192

static void set_config(UNetConfig *c, int nf, const int *mult, int depth, int context_dim, bool degra, bool image) {
    memset(c, 0, sizeof *c);
    c->in_nc = 3;
    c->out_nc = 3;
    c->nf = nf;
    c->depth = depth;
    memcpy(c->ch_mult, mult, sizeof(int) * (size_t)depth);
    c->context_dim = context_dim;
    c->use_degra_context = degra;
    c->use_image_context = image;
}

int unet_config_preset(const char *name, UNetConfig *c) {
    static const int universal[] = {1, 2, 4, 8}, small[] = {1, 2, 2, 4};
    if (!name) return -1;
    if (!strcmp(name, "universal")) set_config(c, 64, universal, 4, 512, true, true);
    else if (!strcmp(name, "small")) set_config(c, 16, small, 4, 512, true, true);
    else if (!strcmp(name, "plain")) set_config(c, 64, universal, 4, 512, false, false);
    else return -1;
    return 0;
}

int unet_time_dim(const UNetConfig *c) { return 4 * c->nf; }

int unet_pad_multiple(const UNetConfig *c) { return 1 << c->depth; }

static int in_range(const char *field, long long v, long long lo, long long hi) {
    if (v >= lo && v <= hi) return 0;
    t_set_errmsg("unet config: %s = %lld outside %lld..%lld", field, v, lo, hi);
    return -1;
}

/* Channels of a SpatialTransformer: GroupNorm(32) groups and 32-wide heads. */
static int check_spatial(const char *where, long long ch) {
    if (ch % UNET_HEAD_CHANNELS == 0) return 0;
    t_set_errmsg("unet config: with use_image_context, %s is a SpatialTransformer and needs a multiple of %d "
                 "channels (GroupNorm(32), %d-channel heads), got %lld",
                 where, UNET_HEAD_CHANNELS, UNET_HEAD_CHANNELS, ch);
    return -1;
}

int unet_config_validate(const UNetConfig *c) {
    if (in_range("in_nc", c->in_nc, 1, MAX_IO_NC) || in_range("out_nc", c->out_nc, 1, MAX_IO_NC) ||
        in_range("nf", c->nf, 4, MAX_NF) || in_range("len(ch_mult)", c->depth, 1, UNET_MAX_DEPTH) ||
        in_range("context_dim", c->context_dim, 0, MAX_CONTEXT))
        return -1;
    if (c->nf % 2) {   /* SinusoidalPosEmb(nf) makes 2·(nf/2) features for Linear(nf, ·) */
        t_set_errmsg("unet config: nf = %d must be even (the sinusoidal time embedding has nf features)", c->nf);
        return -1;
    }
    for (int i = 0; i < c->depth; i++) {
        char field[32];
        snprintf(field, sizeof field, "ch_mult[%d]", i);
        if (in_range(field, c->ch_mult[i], 1, MAX_MULT)) return -1;
        if ((long long)c->nf * c->ch_mult[i] > MAX_CHANNELS) {
            t_set_errmsg("unet config: nf·ch_mult[%d] = %lld channels, above %d", i,
                         (long long)c->nf * c->ch_mult[i], MAX_CHANNELS);
            return -1;
        }
    }
    if (c->context_dim == 0 && (c->use_degra_context || c->use_image_context)) {
        t_set_errmsg("unet config: %s needs context_dim > 0",
                     c->use_degra_context ? "use_degra_context" : "use_image_context");
        return -1;
    }
    if (c->use_image_context) {
        for (int i = UNET_FIRST_SPATIAL_LEVEL; i < c->depth; i++) {
            char where[96];
            long long in = (long long)c->nf * (i ? c->ch_mult[i - 1] : 1), out = (long long)c->nf * c->ch_mult[i];
            snprintf(where, sizeof where, "level %d (down, %lld ch)", i, in);
            if (check_spatial(where, in)) return -1;
            snprintf(where, sizeof where, "level %d (up, %lld ch)", i, out);
            if (check_spatial(where, out)) return -1;
        }
        if (check_spatial("the middle block", (long long)c->nf * c->ch_mult[c->depth - 1])) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- JSON */

int unet_config_to_json(const UNetConfig *c, char *buf, size_t n) {
    char mult[13 * UNET_MAX_DEPTH + 4];   /* ", -2147483648" per entry */
    size_t k = 0;
    mult[k++] = '[';
    for (int i = 0; i < c->depth && i < UNET_MAX_DEPTH && k < sizeof mult; i++)
        k += (size_t)snprintf(mult + k, sizeof mult - k, "%s%d", i ? ", " : "", c->ch_mult[i]);
    if (k + 2 > sizeof mult) return -1;   /* an unvalidated config with huge entries */
    snprintf(mult + k, sizeof mult - k, "]");
    int w = snprintf(buf, n,
                     "{\"format\":\"%s\",\"in_nc\":\"%d\",\"out_nc\":\"%d\",\"nf\":\"%d\",\"ch_mult\":\"%s\","
                     "\"context_dim\":\"%d\",\"use_degra_context\":\"%s\",\"use_image_context\":\"%s\"}",
                     UNET_FORMAT, c->in_nc, c->out_nc, c->nf, mult, c->context_dim,
                     c->use_degra_context ? "true" : "false", c->use_image_context ? "true" : "false");
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* A whole-string decimal integer (optional sign); -1 on anything else or overflow. */
static int parse_int(const char *s, long long *v) {
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

static int parse_bool(const char *s, bool *v) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "1")) *v = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "0")) *v = false;
    else return -1;
    return 0;
}

/* "[1, 2, 4, 8]" or "1,2,4,8": 1..UNET_MAX_DEPTH integers in int range (validation bounds them further). */
static int parse_mult(const char *s, UNetConfig *c) {
    char tmp[256];
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1])) len--;
    while (len && isspace((unsigned char)*s)) s++, len--;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') s++, len -= 2;
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    int n = 0;
    for (char *tok = tmp;; n++) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = 0;
        while (isspace((unsigned char)*tok)) tok++;
        size_t tl = strlen(tok);
        while (tl && isspace((unsigned char)tok[tl - 1])) tok[--tl] = 0;
        long long v;
        if (n >= UNET_MAX_DEPTH || parse_int(tok, &v) || v < -1000000 || v > 1000000) return -1;
        c->ch_mult[n] = (int)v;
        if (!comma) break;
        tok = comma + 1;
    }
    c->depth = n + 1;
    return 0;
}

typedef struct {
    const StFile *f;
    const char *source;
} MetaSource;

static int get_string(const MetaSource *m, const char *key, char *buf, size_t n) {
    if (st_meta_get(m->f, key, buf, n) == 0) return 0;
    t_set_errmsg("%s: U-Net metadata has no string '%s' (or is not a JSON object of strings)", m->source, key);
    return -1;
}

static int get_int(const MetaSource *m, const char *key, int *out) {
    char buf[64];
    long long v;
    if (get_string(m, key, buf, sizeof buf)) return -1;
    if (parse_int(buf, &v) || v < -1000000000LL || v > 1000000000LL) {
        t_set_errmsg("%s: U-Net metadata '%s' is not an integer: '%s'", m->source, key, buf);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int get_bool(const MetaSource *m, const char *key, bool *out) {
    char buf[64];
    if (get_string(m, key, buf, sizeof buf)) return -1;
    if (parse_bool(buf, out)) {
        t_set_errmsg("%s: U-Net metadata '%s' is not a boolean (true/false): '%s'", m->source, key, buf);
        return -1;
    }
    return 0;
}

static int config_from_meta(const MetaSource *m, UNetConfig *c) {
    char buf[256];
    memset(c, 0, sizeof *c);
    if (st_meta_get(m->f, "format", buf, sizeof buf) == 0 && strcmp(buf, UNET_FORMAT)) {
        t_set_errmsg("%s: metadata format is '%s', not a U-Net ('%s')", m->source, buf, UNET_FORMAT);
        return -1;
    }
    if (get_int(m, "in_nc", &c->in_nc) || get_int(m, "out_nc", &c->out_nc) || get_int(m, "nf", &c->nf) ||
        get_string(m, "ch_mult", buf, sizeof buf))
        return -1;
    if (parse_mult(buf, c)) {
        t_set_errmsg("%s: U-Net metadata 'ch_mult' is not a list of 1 to %d integers: '%s'", m->source,
                     UNET_MAX_DEPTH, buf);
        return -1;
    }
    if (get_string(m, "context_dim", buf, sizeof buf)) return -1;
    if (!strcmp(buf, "none") || !strcmp(buf, "None") || !strcmp(buf, "null")) {
        c->context_dim = 0;
    } else if (get_int(m, "context_dim", &c->context_dim)) {
        return -1;
    }
    if (get_bool(m, "use_degra_context", &c->use_degra_context) ||
        get_bool(m, "use_image_context", &c->use_image_context))
        return -1;
    if (unet_config_validate(c)) {
        char why[512];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s: %s", m->source, why);
        return -1;
    }
    return 0;
}

int unet_config_from_json(const char *json, const char *source, UNetConfig *c) {
    /* the metadata reader works on a file's metadata text; give it this text */
    StFile f;
    memset(&f, 0, sizeof f);
    f.metadata_json = (char *)json;
    MetaSource m = {&f, source ? source : "U-Net config"};
    if (!json) {
        t_set_errmsg("%s: no U-Net metadata", m.source);
        return -1;
    }
    return config_from_meta(&m, c);
}

int unet_config_from_file(const StFile *f, UNetConfig *c) {
    MetaSource m = {f, f->path ? f->path : "U-Net file"};
    if (!f->metadata_json) {
        t_set_errmsg("%s: no metadata, so no U-Net configuration (not a daclip U-Net file?)", m.source);
        return -1;
    }
    return config_from_meta(&m, c);
}
