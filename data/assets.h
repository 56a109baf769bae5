#ifndef DACLIP_DATA_ASSETS_H
#define DACLIP_DATA_ASSETS_H
/* The project's shipped data files (data/assets/: the official CLIP vocabulary, the official inpainting masks;
 * licences in data/assets/LICENSES.md), found the same way from any working directory. */
#include <stddef.h>

/* Path of asset `rel` (e.g. "clip/bpe_simple_vocab_16e6.txt.gz", "inpainting_masks") written into buf (n bytes).
 * Where it looks, first hit wins:
 *   1. $DACLIP_ASSETS/rel when DACLIP_ASSETS is set (then nowhere else: an explicit choice is not second-guessed);
 *   2. next to the running binary (/proc/self/exe): <bindir>/../data/assets/rel (build/daclip, build-san/daclip),
 *      <bindir>/../../data/assets/rel (build/tests/<test>, build/bench/<bench>),
 *      <bindir>/../share/daclip/assets/rel (an installed layout);
 *   3. ./data/assets/rel (the source tree as working directory).
 * Returns buf when one exists (readable file or folder). Otherwise NULL, and buf holds the first place looked at
 * (so a message can name it). */
const char *daclip_asset_path(const char *rel, char *buf, size_t n);

#endif
