#ifndef DACLIP_TESTS_UTIL_CLI_H
#define DACLIP_TESTS_UTIL_CLI_H
/* Running the daclip binary from a test: the one built next to the test binary (<build>/tests/test_x ->
 * <build>/daclip, so build-san/daclip under `make san`). Include after <cmocka.h>. */
#include <stddef.h>

/* What the last cli_run wrote (NUL-terminated, truncated to the buffer). */
extern char cli_out[16384], cli_err[16384];

/* cli_run kills a command after this many seconds (default 120). */
extern unsigned cli_timeout_s;

/* Finds the daclip binary; a cmocka group setup (0, or -1 with a message when it is not built). */
int cli_find(void **state);
/* Runs daclip args... (NULL-terminated) with stdin from /dev/null and stdout to `stdout_path` (NULL: captured
 * into cli_out); stderr is captured into cli_err. A run longer than cli_timeout_s is killed (a hang is a failure, not
 * a stuck test). Returns the exit status, or 128 + signal. */
int cli_run(const char *stdout_path, const char *const *args);

#endif
