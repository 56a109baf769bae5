/* The CLIP BPE tokenizer against open_clip's SimpleTokenizer (fixtures from
 * tests/reference/gen_tokenizer.py), its error handling, and BPE training. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "clip/bpe_train.h"
#include "clip/tokenizer.h"

/* the project's copy of the official vocabulary (data/assets/LICENSES.md); tests run from the repository root */
#define OFFICIAL "data/assets/clip/bpe_simple_vocab_16e6.txt.gz"
#define CASES "tests/fixtures/tokenizer_cases.txt"

static Tokenizer *official_vocab(void) {
    if (access(OFFICIAL, R_OK) != 0) fail_msg("%s not found: the official vocabulary ships with the project", OFFICIAL);
    char err[512] = "";
    Tokenizer *tok = tokenizer_load(OFFICIAL, err, sizeof err);
    if (!tok) fail_msg("%s", err);
    return tok;
}

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "/tmp/daclip_test_tokenizer_%d_%s", (int)getpid(), name);
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const char *text) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_true(gzputs(f, text) >= 0);
    assert_int_equal(gzclose(f), Z_OK);
}

/* ---- reference §7.5 ------------------------------------------------------------------------ */

static void test_reference_vectors(void **state) {
    (void)state;
    Tokenizer *tok = official_vocab();
    static const struct { const char *text; int n; int32_t ids[8]; } v[] = {
        {"a photo of a cat", 7, {49406, 320, 1125, 539, 320, 2368, 49407}},
        {"motion-blurry", 5, {49406, 7860, 268, 21977, 49407}},
        {"hazy", 3, {49406, 32655, 49407}},
        {"jpeg-compressed", 6, {49406, 73, 11207, 268, 42359, 49407}},
        {"low-light", 5, {49406, 1042, 268, 1395, 49407}},
        {"noisy", 3, {49406, 33495, 49407}},
        {"raindrop", 4, {49406, 3128, 3387, 49407}},
        {"rainy", 3, {49406, 10222, 49407}},
        {"shadowed", 4, {49406, 15243, 538, 49407}},
        {"snowy", 3, {49406, 14191, 49407}},
        {"uncompleted", 4, {49406, 569, 5976, 49407}},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int32_t out[TOKENIZER_CONTEXT];
        assert_int_equal(tokenizer_tokenize(tok, v[i].text, out), v[i].n);
        for (int k = 0; k < TOKENIZER_CONTEXT; k++) {
            int32_t want = k < v[i].n ? v[i].ids[k] : 0;
            if (out[k] != want) fail_msg("'%s': id %d is %d, want %d", v[i].text, k, out[k], want);
        }
    }
    tokenizer_free(tok);
}

static void test_official_vocab_shape(void **state) {
    (void)state;
    Tokenizer *tok = official_vocab();
    assert_int_equal(tokenizer_n_merges(tok), 48894);
    assert_int_equal(tokenizer_vocab_size(tok), 49408);
    assert_int_equal(tokenizer_sot(tok), 49406);
    assert_int_equal(tokenizer_eot(tok), 49407);
    assert_string_equal(tokenizer_id_string(tok, 0), "!");
    assert_string_equal(tokenizer_id_string(tok, 256), "!</w>");
    assert_string_equal(tokenizer_id_string(tok, 49405), "jekyll</w>"); /* last merge: "jeky ll</w>" */
    assert_string_equal(tokenizer_id_string(tok, 49406), "<start_of_text>");
    assert_null(tokenizer_id_string(tok, 49408));
    tokenizer_free(tok);
}

/* ---- fixture cases from the Python reference ----------------------------------------------- */

static size_t unhex(const char *h, size_t n, char *out) {
    size_t m = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        sscanf(h + i, "%2x", &v);
        out[m++] = (char)v;
    }
    out[m] = 0;
    return m;
}

static void test_fixture_cases(void **state) {
    (void)state;
    Tokenizer *tok = official_vocab();
    FILE *f = fopen(CASES, "r");
    if (!f) fail_msg("%s missing: run tests/reference/gen_tokenizer.py", CASES);
    char *line = NULL;
    size_t cap = 0;
    int cases = 0, failures = 0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#') continue;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        assert_non_null(t2);
        char *text = malloc((size_t)(t1 - line) / 2 + 1), *want_dec = malloc(strlen(t2) / 2 + 1);
        unhex(line, (size_t)(t1 - line), text);
        size_t dn = strcspn(t2 + 1, "\r\n");
        unhex(t2 + 1, dn, want_dec);
        int32_t want[TOKENIZER_CONTEXT] = {0}, got[TOKENIZER_CONTEXT];
        int nw = 0;
        for (char *p = t1 + 1; p < t2 && nw < TOKENIZER_CONTEXT;) {
            char *end;
            want[nw++] = (int32_t)strtol(p, &end, 10);
            p = end;
            while (*p == ' ') p++;
        }
        assert_int_equal(tokenizer_tokenize(tok, text, got), nw);
        int bad = memcmp(want, got, sizeof want) != 0;
        /* decode of the untruncated sequence */
        int32_t *all = malloc(4096 * sizeof *all);
        int n = tokenizer_encode(tok, text, all + 1, 4094);
        assert_true(n >= 0 && n <= 4094);
        all[0] = tokenizer_sot(tok);
        all[n + 1] = tokenizer_eot(tok);
        size_t len = tokenizer_decode(tok, all, n + 2, NULL, 0);
        char *dec = malloc(len + 1);
        assert_int_equal(tokenizer_decode(tok, all, n + 2, dec, len + 1), len);
        if (strcmp(dec, want_dec)) bad |= 2;
        if (bad) {
            failures++;
            print_error("case '%.60s': %s differ\n", text, bad == 2 ? "decodes" : "ids");
        }
        cases++;
        free(dec);
        free(all);
        free(text);
        free(want_dec);
    }
    free(line);
    fclose(f);
    assert_true(cases >= 41);
    assert_int_equal(failures, 0);
    tokenizer_free(tok);
}

static void test_truncation(void **state) {
    (void)state;
    Tokenizer *tok = official_vocab();
    char text[2000] = "";
    for (int i = 0; i < 40; i++) strcat(text, "a photo of a cat ");
    int32_t out[TOKENIZER_CONTEXT];
    assert_int_equal(tokenizer_tokenize(tok, text, out), 77);
    assert_int_equal(out[0], 49406);
    assert_int_equal(out[1], 320);
    assert_int_equal(out[75], 2368); /* encode id 74 = 74 % 5 -> "cat" */
    assert_int_equal(out[76], 49407);
    assert_int_equal(tokenizer_encode(tok, text, out, 3), 200); /* full count, 3 stored */
    int32_t small[5];
    assert_int_equal(tokenizer_tokenize_n(tok, "a photo of a cat", small, 5), 5);
    int32_t want[5] = {49406, 320, 1125, 539, 49407};
    assert_memory_equal(small, want, sizeof want);
    /* invalid UTF-8 never crashes; each bad byte reads as U+FFFD */
    assert_true(tokenizer_tokenize(tok, "\xff\xfe abc \xe2\x82", out) > 2);
    tokenizer_free(tok);
}

/* ---- no vocabulary needed ------------------------------------------------------------------ */

static void check_normalize(const char *in, const char *want) {
    size_t n;
    uint32_t *s = clip_normalize(in, &n);
    assert_non_null(s);
    char buf[256];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += (size_t)utf8_encode(s[i], buf + m);
    buf[m] = 0;
    free(s);
    if (strcmp(buf, want)) fail_msg("normalize('%s') = '%s', want '%s'", in, buf, want);
}

static void test_normalize(void **state) {
    (void)state;
    check_normalize("  Fish &amp; Chips  ", "fish & chips");
    check_normalize("&amp;amp;", "&");          /* unescaped twice */
    check_normalize("&amp;amp;amp;", "&amp;");  /* ... and only twice */
    check_normalize("&lt;b&gt; &#39;x&#x27; &#65", "<b> 'x' a");
    check_normalize("&copy2023 &notit; &bogus;", "\xc2\xa9""2023 \xc2\xacit; &bogus;");
    check_normalize("&#128;&#0;&#1;x", "\xe2\x82\xac\xef\xbf\xbdx");
    check_normalize("a\t\n b\xe3\x80\x80\xc2\xa0" "c", "a b c");
    check_normalize("\x1c hi \x1f", "hi");   /* Python strip() removes \x1c..\x1f, \s does not */
    check_normalize("\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82");  /* ΟΔΟΣ -> οδος */
    check_normalize("\xce\xa3", "\xcf\x83");                                    /* lone Σ -> σ */
    check_normalize("\xc3\x89T\xc3\x89 \xd0\x81\xd0\x9b", "\xc3\xa9t\xc3\xa9 \xd1\x91\xd0\xbb"); /* ÉTÉ ЁЛ */
}

static void test_split(void **state) {
    (void)state;
    const char *text = "it's 42 cats!!  \xe6\x97\xa5\xe6\x9c\xac <end_of_text>'ll";
    size_t n;
    uint32_t *s = clip_normalize(text, &n);
    const char *want[] = {"it", "'s", "4", "2", "cats", "!!", "\xe6\x97\xa5\xe6\x9c\xac", "<end_of_text>", "'ll"};
    size_t pos = 0, a, b;
    int k = 0;
    while (clip_next_piece(s, n, &pos, &a, &b)) {
        char buf[64];
        size_t m = 0;
        for (size_t i = a; i < b; i++) m += (size_t)utf8_encode(s[i], buf + m);
        buf[m] = 0;
        assert_true(k < 9);
        assert_string_equal(buf, want[k]);
        k++;
    }
    assert_int_equal(k, 9);
    free(s);
    assert_true(unicode_class(0x4E2D) & UC_LETTER);
    assert_true(unicode_class(0x0663) & UC_NUMBER);
    assert_true(unicode_class(0x00BD) & UC_NUMBER);
    assert_false(unicode_class(0x0345) & UC_PUNCT); /* IGNORECASE quirk: folds to a letter */
    assert_true(unicode_class(0x0301) & UC_PUNCT);
    for (int b2 = 0; b2 < 256; b2++) assert_int_equal(clip_char_byte(clip_byte_char((uint8_t)b2)), b2);
}

static void expect_load_error(const char *path, const char *needle) {
    char err[512] = "";
    Tokenizer *tok = tokenizer_load(path, err, sizeof err);
    if (tok) { tokenizer_free(tok); fail_msg("%s loaded, want an error with '%s'", path, needle); }
    if (!strstr(err, path) || !strstr(err, needle)) fail_msg("error '%s' lacks '%s' or the path", err, needle);
}

static void test_corrupt_vocab(void **state) {
    (void)state;
    char p[256];
    tmp_path(p, sizeof p, "missing.txt.gz");
    expect_load_error(p, "cannot open");
    tmp_path(p, sizeof p, "noheader.txt");
    write_file(p, "i n\nt h\n", 8);
    expect_load_error(p, "not a CLIP BPE merges file");
    remove(p);
    tmp_path(p, sizeof p, "short.txt.gz");
    write_gz(p, "#version: 0.2 merges=3\ni n\nt h\n");
    expect_load_error(p, "truncated: 2 merge lines, expected 3");
    write_gz(p, "\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n");
    expect_load_error(p, "expected 48894");
    write_gz(p, "#version: 0.2 merges=2\ni n\nt h x\n");
    expect_load_error(p, ":3: malformed merge line");
    write_gz(p, "#version: 0.2 merges=2\ni n\nt\th\n");
    expect_load_error(p, "malformed");
    write_gz(p, "#version: 0.2 merges=-5\n");
    expect_load_error(p, "bad merge count");
    remove(p);
    /* a gzip stream cut in half, and gzip magic followed by garbage */
    tmp_path(p, sizeof p, "cut.txt.gz");
    char *big = malloc(200000), *q = big;
    q += sprintf(q, "#version: 0.2 merges=20000\n");
    for (int i = 0; i < 20000; i++) q += sprintf(q, "%c%c %c%c\n", 'a' + i % 26, 'a' + i / 26 % 26, 'a' + i / 676 % 26, 'b' + i % 7);
    write_gz(p, big);
    free(big);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    char buf[65536];
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(got > 1000);
    write_file(p, buf, got / 2);
    expect_load_error(p, "corrupt or truncated");
    memset(buf + 10, 0x5a, 500);
    write_file(p, buf, 600);
    expect_load_error(p, "corrupt or truncated");
    remove(p);
    /* the official file cut short */
    FILE *of = fopen(OFFICIAL, "rb");
    assert_non_null(of);
    char *part = malloc(400000);
    assert_non_null(part);
    size_t m = fread(part, 1, 400000, of);
    fclose(of);
    assert_int_equal(m, 400000);
    tmp_path(p, sizeof p, "official_cut.txt.gz");
    write_file(p, part, m);
    free(part);
    expect_load_error(p, "corrupt or truncated");
    remove(p);
}

/* ---- BPE training -------------------------------------------------------------------------- */

static const char *const corpus[] = {
    "A photo of a cat in the snow.", "a blurry photo of a dog", "A hazy photo of a mountain at dawn",
    "a low-light photo of a street at night", "A noisy photo of a cat on a sofa", "rainy street, photo",
    "a photo of two cats and a dog", "snowy mountain photo with a cat",
};

static BpeTrainer *train_small(int merges, int *got) {
    BpeTrainer *bt = bpe_trainer_new();
    assert_non_null(bt);
    for (int rep = 0; rep < 30; rep++)
        for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++) assert_int_equal(bpe_trainer_add_text(bt, corpus[i]), 0);
    *got = bpe_trainer_learn(bt, merges, NULL, NULL);
    return bt;
}

static void test_bpe_train_roundtrip(void **state) {
    (void)state;
    int got;
    BpeTrainer *bt = train_small(40, &got);
    assert_int_equal(got, 40);
    char p[256], err[512];
    tmp_path(p, sizeof p, "trained.txt.gz");
    assert_int_equal(bpe_trainer_save(bt, p, err, sizeof err), 0);
    bpe_trainer_free(bt);
    Tokenizer *tok = tokenizer_load(p, err, sizeof err);
    if (!tok) fail_msg("%s", err);
    assert_int_equal(tokenizer_n_merges(tok), 40);
    assert_int_equal(tokenizer_vocab_size(tok), 512 + 40 + 2);
    assert_int_equal(tokenizer_sot(tok), 552);
    assert_int_equal(tokenizer_eot(tok), 553);
    /* frequent words become single tokens */
    const char *words[] = {"photo", "cat", "mountain", "street"};
    for (int i = 0; i < 4; i++) {
        int32_t ids[16];
        int n = tokenizer_encode(tok, words[i], ids, 16);
        if (n != 1) fail_msg("'%s' is %d tokens after training, want 1", words[i], n);
        char want[32];
        snprintf(want, sizeof want, "%s</w>", words[i]);
        assert_string_equal(tokenizer_id_string(tok, ids[0]), want);
    }
    /* decode(encode(x)) gives the cleaned text back, one space after each piece */
    const char *texts[][2] = {{"A Photo of a CAT", "a photo of a cat "},
                              {"zebra xylophone", "zebra xylophone "},
                              {"caf\xc3\xa9 \xf0\x9f\x90\xb1", "caf\xc3\xa9 \xf0\x9f\x90\xb1 "}};
    for (int i = 0; i < 3; i++) {
        int32_t ids[TOKENIZER_CONTEXT];
        int n = tokenizer_tokenize(tok, texts[i][0], ids);
        assert_int_equal(ids[0], 552);
        assert_int_equal(ids[n - 1], 553);
        char dec[256];
        tokenizer_decode(tok, ids + 1, n - 2, dec, sizeof dec);
        assert_string_equal(dec, texts[i][1]);
    }
    /* the per-word cache is bounded: well past its limit, results stay the same */
    int32_t before[8], after[8];
    int nb = tokenizer_encode(tok, "photo mountains", before, 8);
    char word[8] = "";
    for (int i = 0; i < 70000; i++) {
        for (int k = 0, v = i; k < 4; k++, v /= 26) word[k] = (char)('a' + v % 26);
        int32_t tmp[8];
        assert_true(tokenizer_encode(tok, word, tmp, 8) >= 1);
    }
    assert_int_equal(tokenizer_encode(tok, "photo mountains", after, 8), nb);
    assert_memory_equal(before, after, (size_t)nb * sizeof *before);
    tokenizer_free(tok);
    remove(p);
}

static void test_bpe_train_stops_early(void **state) {
    (void)state;
    int got;
    BpeTrainer *bt = train_small(100000, &got);
    assert_true(got > 40 && got < 1000); /* runs out of pairs seen twice */
    char p[256], err[512];
    tmp_path(p, sizeof p, "all.txt.gz");
    assert_int_equal(bpe_trainer_save(bt, p, err, sizeof err), 0);
    bpe_trainer_free(bt);
    Tokenizer *tok = tokenizer_load(p, err, sizeof err);
    if (!tok) fail_msg("%s", err);
    assert_int_equal(tokenizer_vocab_size(tok), 512 + got + 2);
    for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++) { /* every training word is one token */
        int32_t ids[32];
        int n = tokenizer_encode(tok, corpus[i], ids, 32);
        size_t m;
        uint32_t *s = clip_normalize(corpus[i], &m);
        size_t pos = 0, a, b;
        int pieces = 0;
        while (clip_next_piece(s, m, &pos, &a, &b)) pieces++;
        free(s);
        assert_int_equal(n, pieces);
    }
    tokenizer_free(tok);
    remove(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),   cmocka_unit_test(test_official_vocab_shape),
        cmocka_unit_test(test_fixture_cases),       cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_normalize),           cmocka_unit_test(test_split),
        cmocka_unit_test(test_corrupt_vocab),       cmocka_unit_test(test_bpe_train_roundtrip),
        cmocka_unit_test(test_bpe_train_stops_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
