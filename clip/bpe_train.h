#ifndef DACLIP_CLIP_BPE_TRAIN_H
#define DACLIP_CLIP_BPE_TRAIN_H
/* Learning byte-level BPE merges from captions, in the CLIP convention (same text clean-up and split
 * as clip/tokenizer.h, </w> on each piece's last byte), so small models can be trained without the
 * official vocabulary. The output loads with tokenizer_load: vocab size = 512 + merges + 2. */
#include <stddef.h>
#include <stdint.h>

typedef struct BpeTrainer BpeTrainer;

BpeTrainer *bpe_trainer_new(void);
void bpe_trainer_free(BpeTrainer *bt);

/* Adds one caption (UTF-8). Returns 0, or -1 when out of memory. */
int bpe_trainer_add_text(BpeTrainer *bt, const char *text);
int64_t bpe_trainer_n_pieces(const BpeTrainer *bt);      /* pieces seen so far */
int64_t bpe_trainer_n_unique(const BpeTrainer *bt);      /* distinct pieces */

/* Learns up to n_merges merges, most frequent adjacent pair first (ties: lower symbol ids first).
 * Stops early when no pair occurs at least twice. progress (may be NULL) is called after each merge.
 * Returns the number of merges learned, -1 when out of memory. */
int bpe_trainer_learn(BpeTrainer *bt, int n_merges, void (*progress)(void *ctx, int done, int total), void *ctx);

/* Writes the merges as a gzip file: "#version: 0.2 daclip-bpe merges=K" then one "a b" line per merge.
 * Returns 0, or -1 with a message naming the file in err. */
int bpe_trainer_save(const BpeTrainer *bt, const char *path, char *err, size_t errlen);

#endif
