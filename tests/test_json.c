/* Issue 10, class 11 (configuration metadata read with strstr) and class 1 (every configuration field checked):
 * tensor/json.h reads any JSON spelling of a flat object of strings and refuses malformed text; the CLIP
 * configuration is read and written through it, so metadata re-saved with ordinary JSON spacing loads, and every
 * field is checked (head count 0, widths not divisible by heads, patch not dividing the image, sizes that would
 * allocate gigabytes). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/model.h"
#include "tensor/json.h"
#include "tensor/tensor.h"

static void test_object_any_spelling(void **state) {
    (void)state;
    const char *spaced = "{\n  \"model\" : \"tiny\",\r\n\t\"note\": \"a \\\"quoted\\\" \\u00e9\\ud83d\\ude00 \\/ \\n\"  ,"
                         " \"step\":\"12\" }  \n";
    JsonObject o = {0};
    assert_int_equal(json_object_parse(&o, spaced, strlen(spaced)), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(json_object_get(&o, "model"), "tiny");
    assert_string_equal(json_object_get(&o, "note"), "a \"quoted\" \xc3\xa9\xf0\x9f\x98\x80 / \n");
    assert_null(json_object_get(&o, "absent"));
    int64_t v = 0;
    assert_int_equal(json_object_get_int(&o, "step", 0, 100, &v), 0);
    assert_int_equal(v, 12);
    /* written back compactly and escaped, it parses to the same object */
    assert_int_equal(json_object_set(&o, "path", "C:\\dir\t\"x\""), 0);
    assert_int_equal(json_object_set(&o, "model", "small"), 0);   /* replaced in place */
    char *text = json_object_write(&o);
    assert_non_null(text);
    JsonObject back = {0};
    assert_int_equal(json_object_parse(&back, text, strlen(text)), 0);
    assert_int_equal(back.n, 4);
    assert_string_equal(back.items[0].key, "model");
    assert_string_equal(json_object_get(&back, "model"), "small");
    assert_string_equal(json_object_get(&back, "path"), "C:\\dir\t\"x\"");
    assert_string_equal(json_object_get(&back, "note"), json_object_get(&o, "note"));
    free(text);
    json_object_free(&back);
    json_object_free(&o);
    const char *empty = " { } ";
    assert_int_equal(json_object_parse(&o, empty, strlen(empty)), 0);
    assert_int_equal(o.n, 0);
    json_object_free(&o);
}

static void test_object_malformed(void **state) {
    (void)state;
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "expected an object"},
        {"{\"a\":\"1\"", "expected ',' or '}'"},
        {"{\"a\":\"1\",}", "expected a string"},
        {"{\"a\":1}", "values must be strings"},
        {"{\"a\":\"1\",\"a\":\"2\"}", "duplicate key"},
        {"{\"a\":\"1\"} x", "trailing characters"},
        {"{\"a\" \"1\"}", "expected ':'"},
        {"{\"a\":\"x\\q\"}", "bad escape"},
        {"{\"a\":\"\\u00\"}", "bad \\u escape"},
        {"{\"a\":\"\\ud800\"}", "lone surrogate"},
        {"{\"a\":\"\\udc00\"}", "lone low surrogate"},
        {"{\"a\":\"\\u0000\"}", "NUL character"},
        {"{\"a\":\"tab\there\"}", "control character"},
        {"{\"a\":\"\xff\"}", "invalid UTF-8"},
        {"{\"a\":\"\xc0\xaf\"}", "invalid UTF-8"},          /* overlong '/' */
        {"{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8"},      /* encoded surrogate */
        {"{\"a\":\"unterminated}", "unterminated string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        JsonObject o = {0};
        print_message("%s\n", bad[i].text);
        assert_int_equal(json_object_parse(&o, bad[i].text, strlen(bad[i].text)), -1);
        assert_non_null(strstr(t_errmsg(), bad[i].why));
        assert_non_null(strstr(t_errmsg(), "byte "));
        assert_int_equal(o.n, 0);
    }
    /* the streaming reader's numbers follow the JSON grammar */
    static const char *const numbers_ok[] = {"0", "-0", "12", "1.5e-3", "-2E+10", "0.25"};
    static const char *const numbers_bad[] = {"01", "1.", ".5", "1e", "--1", "1-2", "+1", "0x10", "1.2.3"};
    for (size_t i = 0; i < sizeof numbers_ok / sizeof numbers_ok[0]; i++) {
        JsonReader j;
        json_reader_init(&j, numbers_ok[i], strlen(numbers_ok[i]));
        assert_true(json_skip(&j) && json_at_end(&j));
    }
    for (size_t i = 0; i < sizeof numbers_bad / sizeof numbers_bad[0]; i++) {
        JsonReader j;
        json_reader_init(&j, numbers_bad[i], strlen(numbers_bad[i]));
        print_message("number %s\n", numbers_bad[i]);
        assert_false(json_skip(&j) && json_at_end(&j));
    }
    /* a NUL byte inside the text is not a number's end */
    JsonReader j;
    json_reader_init(&j, "[1\0002]", 5);
    assert_false(json_skip(&j) && json_at_end(&j));
}

static void test_object_strict_integers(void **state) {
    (void)state;
    const char *text = "{\"ok\":\"-7\",\"sp\":\" 7\",\"exp\":\"1e3\",\"tail\":\"12abc\",\"empty\":\"\",\"big\":\"99999999999999999999\"}";
    JsonObject o = {0};
    assert_int_equal(json_object_parse(&o, text, strlen(text)), 0);
    int64_t v;
    assert_int_equal(json_object_get_int(&o, "ok", -10, 10, &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(json_object_get_int(&o, "ok", 0, 10, &v), -1);
    assert_non_null(strstr(t_errmsg(), "'ok' = -7 is outside 0..10"));
    static const char *const not_int[] = {"sp", "exp", "tail", "empty", "big"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(json_object_get_int(&o, not_int[i], INT64_MIN, INT64_MAX, &v), -1);
        assert_non_null(strstr(t_errmsg(), "is not an integer"));
    }
    assert_int_equal(json_object_get_int(&o, "absent", 0, 1, &v), -1);
    assert_non_null(strstr(t_errmsg(), "'absent' is missing"));
    assert_int_equal(json_object_set(&o, "bad", "\xff"), -1);   /* would make the file unreadable elsewhere */
    json_object_free(&o);
}

/* ---- the CLIP configuration ---- */

static void test_clip_config_round_trip_and_spacing(void **state) {
    (void)state;
    ClipConfig c, back;
    assert_int_equal(clip_config_preset("ViT-B-32", &c), 0);
    char json[1024], small[16];
    assert_int_equal(clip_config_to_json(&c, json, sizeof json), 0);
    assert_int_equal(clip_config_to_json(&c, small, sizeof small), -1);   /* too small: refused, not cut */
    assert_string_equal(small, "");
    assert_int_equal(clip_config_from_json(json, &back), 0);
    assert_memory_equal(&c, &back, sizeof c);
    assert_int_equal(clip_param_count(&c), 151277313);   /* open_clip ViT-B-32 */
    /* the deep small preset: tiny-128 plus four residual blocks of width 128 (12 w² + 13 w each) */
    ClipConfig t128, deep;
    assert_int_equal(clip_config_preset("tiny-128", &t128), 0);
    assert_int_equal(clip_config_preset("tiny-128-deep", &deep), 0);
    assert_int_equal(clip_param_count(&deep) - clip_param_count(&t128), 4 * (12 * 128 * 128 + 13 * 128));
    /* re-saved by another tool with ordinary spacing, keys reordered, an extra key */
    const char *spaced =
        "{\n  \"vocab\": \"/x/bpe.txt.gz\",\n  \"text_layers\": \"12\",\n  \"text_heads\": \"8\",\n"
        "  \"text_width\": \"512\",\n  \"vocab_size\": \"49408\",\n  \"context_length\": \"77\",\n"
        "  \"embed_dim\": \"512\",\n  \"vision_heads\": \"12\",\n  \"vision_layers\": \"12\",\n"
        "  \"vision_width\": \"768\",\n  \"patch_size\": \"32\",\n  \"image_size\": \"224\",\n  \"model\": \"ViT-B-32\"\n}\n";
    assert_int_equal(clip_config_from_json(spaced, &back), 0);
    assert_memory_equal(&c, &back, sizeof c);
}

/* Every field: the good ViT-B-32 metadata with one value replaced must be refused with a message naming it. */
static void test_clip_config_every_field(void **state) {
    (void)state;
    static const struct {
        const char *key, *value, *why;
    } bad[] = {
        {"vision_heads", "0", "vision_heads' = 0 is outside"},                 /* was a division by zero */
        {"text_heads", "0", "text_heads' = 0 is outside"},
        {"vision_heads", "7", "vision_width 768 is not divisible by vision_heads 7"},
        {"text_heads", "3", "text_width 512 is not divisible by text_heads 3"},
        {"patch_size", "30", "patch_size 30 does not divide image_size 224"},
        {"patch_size", "0", "patch_size' = 0 is outside"},
        {"image_size", "-224", "image_size' = -224 is outside"},
        {"image_size", "1000000", "image_size' = 1000000 is outside"},
        {"patch_size", "1", "image tokens, above"},                           /* 224² tokens */
        {"vision_width", "100000000", "vision_width' = 100000000 is outside"}, /* gigabytes per layer */
        {"text_width", "1048576", "text_width' = 1048576 is outside"},
        {"vision_layers", "0", "vision_layers' = 0 is outside"},
        {"text_layers", "100000", "text_layers' = 100000 is outside"},
        {"vocab_size", "2000000000", "vocab_size' = 2000000000 is outside"},
        {"context_length", "1", "context_length' = 1 is outside"},
        {"context_length", "1000000000", "context_length' = 1000000000 is outside"},
        {"embed_dim", "0", "embed_dim' = 0 is outside"},
        {"embed_dim", "512.0", "'embed_dim' = '512.0' is not an integer"},
        {"embed_dim", " 512", "'embed_dim' = ' 512' is not an integer"},
        {"embed_dim", "", "'embed_dim' = '' is not an integer"},
        {"vision_width", "99999999999999999999", "is not an integer"},
        {"model", "a name much longer than thirty-one characters", "'model' is longer than 31"},
    };
    ClipConfig c, out;
    assert_int_equal(clip_config_preset("ViT-B-32", &c), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        JsonObject o = {0};
        assert_int_equal(clip_config_to_object(&c, &o), 0);
        assert_int_equal(json_object_set(&o, bad[i].key, bad[i].value), 0);
        char *text = json_object_write(&o);
        json_object_free(&o);
        print_message("%s = '%s'\n", bad[i].key, bad[i].value);
        assert_int_equal(clip_config_from_json(text, &out), -1);
        free(text);
        if (!strstr(t_errmsg(), bad[i].why)) fail_msg("message: %s", t_errmsg());
    }
    /* a missing field, a value that is not a string, text that is not JSON */
    assert_int_equal(clip_config_from_json("{\"model\":\"x\",\"image_size\":\"224\"}", &out), -1);
    assert_non_null(strstr(t_errmsg(), "is missing"));
    assert_int_equal(clip_config_from_json("{\"model\":\"x\",\"image_size\":224}", &out), -1);
    assert_non_null(strstr(t_errmsg(), "values must be strings"));
    assert_int_equal(clip_config_from_json("\"image_size\":\"224\"", &out), -1);
    assert_non_null(strstr(t_errmsg(), "malformed JSON"));
    assert_int_equal(clip_config_from_json(NULL, &out), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_any_spelling),
        cmocka_unit_test(test_object_malformed),
        cmocka_unit_test(test_object_strict_integers),
        cmocka_unit_test(test_clip_config_round_trip_and_spacing),
        cmocka_unit_test(test_clip_config_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
