#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/util_cli.h"

char cli_out[16384], cli_err[16384];
unsigned cli_timeout_s = 120;
static char daclip[PATH_MAX];

static void read_all(int fd, char *buf, size_t n) {
    size_t k = 0;
    ssize_t r;
    while ((r = read(fd, buf + k, n - 1 - k)) > 0) k += (size_t)r;
    buf[k] = 0;
}

int cli_run(const char *stdout_path, const char *const *args) {
    char *argv[40];
    int argc = 0;
    argv[argc++] = daclip;
    for (int k = 0; args[k] && argc < 39; k++) argv[argc++] = (char *)args[k];
    argv[argc] = NULL;
    FILE *out = stdout_path ? NULL : tmpfile();
    int err_pipe[2];
    assert_int_equal(pipe(err_pipe), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int o = stdout_path ? open(stdout_path, O_WRONLY) : fileno(out);
        if (in < 0 || o < 0) _exit(97);
        dup2(in, 0);
        dup2(o, 1);
        dup2(err_pipe[1], 2);
        close(err_pipe[0]);
        alarm(cli_timeout_s);   /* survives exec: a hanging command dies with SIGALRM */
        execv(daclip, argv);
        _exit(96);
    }
    close(err_pipe[1]);
    read_all(err_pipe[0], cli_err, sizeof cli_err);
    close(err_pipe[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    cli_out[0] = 0;
    if (out) {
        rewind(out);
        read_all(fileno(out), cli_out, sizeof cli_out);
        fclose(out);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int cli_find(void **state) {
    (void)state;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    char *tests_dir = dirname(self);
    char *build_dir = dirname(tests_dir);
    if (snprintf(daclip, sizeof daclip, "%s/daclip", build_dir) >= (int)sizeof daclip) return -1;
    if (access(daclip, X_OK)) {
        fprintf(stderr, "%s not found (build it first: make)\n", daclip);
        return -1;
    }
    return 0;
}
