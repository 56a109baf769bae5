#ifndef DACLIP_TESTS_UTIL_TINY_DACLIP_H
#define DACLIP_TESTS_UTIL_TINY_DACLIP_H
/* A random tiny DA-CLIP for tests of the code that runs one: a CLIP with 16-dim embeddings, 32-px views
 * (patch 8, width 32, 2 layers), a one-layer text tower of width 32 with 16 tokens and the official
 * vocabulary, written to clip_path; the DA-CLIP built on it (daclip_model_from_clip) written to daclip_path.
 * With controller_spread > 0 the controller's weights are redrawn U(±spread), so that it is no longer a copy
 * of the frozen tower and the content and degradation embeddings differ. Returns 0, or -1 after printing the
 * problem. */
int test_write_tiny_daclip(const char *clip_path, const char *daclip_path, float controller_spread);

#endif
