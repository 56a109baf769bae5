#ifndef DACLIP_TESTS_UTIL_TMPDIR_H
#define DACLIP_TESTS_UTIL_TMPDIR_H
/* Private scratch directories for tests: created fresh (mkdtemp) under $TMPDIR, else /tmp, and removed
 * with everything below them. */
#include <stddef.h>

/* Creates "<tmp>/daclip-<tag>-<random>" into buf; returns 0, or -1 if it cannot. */
int test_tmpdir_create(char *buf, size_t n, const char *tag);
/* Number of entries in dir, "." and ".." and hidden names not counted (-1 if it cannot be read): tests that
 * check that no temporary file was left behind. */
int test_dir_count(const char *dir);
/* Removes dir and its whole contents (depth first, without a shell); returns 0, or -1 on any failure. */
int test_tmpdir_remove(const char *dir);
/* 1 when files a and b both open and hold the same bytes, else 0. */
int test_files_equal(const char *a, const char *b);

#endif
