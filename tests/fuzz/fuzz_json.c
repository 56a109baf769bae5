/* Every JSON configuration reader: model-file metadata (CLIP, U-Net) and the official config files. */
#include <stdlib.h>
#include <string.h>

#include "clip/model.h"
#include "irsde/unet.h"
#include "tensor/json.h"
#include "tests/fuzz/fuzz_util.h"
#include "train/pt_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char *text = malloc(n + 1);
    if (!text) return 0;
    memcpy(text, data, n);
    text[n] = 0;
    JsonObject o = {0};
    if (json_object_parse(&o, text, n) == 0) json_object_free(&o);
    ClipConfig c;
    clip_config_from_json(text, &c);
    UNetConfig u;
    unet_config_from_json(text, "fuzz", &u);
    char err[512];
    const char *path = fuzz_file(data, n, ".json");
    clip_config_from_open_clip_json(path, &c, err, sizeof err);
    unet_config_from_options_json(path, &u, err, sizeof err);
    free(text);
    return 0;
}
