/* Checkpoints: bit-identical resume (train N straight vs N/2 + save + fresh state + load + N/2), and
 * kill-safety (a child killed with SIGKILL at every phase of a save, and at random moments while
 * saving in a loop, never damages the previous checkpoint). */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nn/checkpoint.h"
#include "nn/schedule.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "tests/util_tmpdir.h"
#include "tests/util_check.h"

static char dir[64];

static int make_dir(void **state) {
    (void)state;
    return test_tmpdir_create(dir, sizeof dir, "test-ckpt");
}

static void clear_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
}

static int count_temp_files(void) {
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static int remove_dir(void **state) {
    (void)state;
    return test_tmpdir_remove(dir);
}

/* ---- a small run: linear(8->32)-gelu-linear(32->4) + MSE on random batches drawn from the run's RNG */

typedef struct {
    ParamSet ps;
    Optim *opt;
    Ema ema;
    TRng rng;
    LrSchedule sched;
    int64_t step;
} Run;

static void run_init(Run *r, uint64_t seed, int hidden) {
    rng_seed(&r->rng, seed);
    params_init(&r->ps);
    Tensor *w1 = params_new(&r->ps, "fc1", "weight", T_SHAPE(hidden, 8));
    Tensor *b1 = params_new(&r->ps, "fc1", "bias", T_SHAPE(hidden));
    Tensor *w2 = params_new(&r->ps, "fc2", "weight", T_SHAPE(4, hidden));
    Tensor *b2 = params_new(&r->ps, "fc2", "bias", T_SHAPE(4));
    init_kaiming_uniform(w1, &r->rng, 8);
    init_uniform_fan_in(b1, &r->rng, 8);
    init_kaiming_uniform(w2, &r->rng, hidden);
    init_uniform_fan_in(b2, &r->rng, hidden);
    OptConfig cfg = optim_adamw_config(1e-2, 0.1);
    r->opt = optim_new(&r->ps, &cfg);
    EmaConfig ec = ema_default_config(0.9, 2);
    ec.update_after_step = 3;
    ema_init(&r->ema, &r->ps, &ec);
    r->sched = (LrSchedule){.kind = LR_WARMUP_COSINE, .base_lr = 1e-2, .warmup = 3, .total = 12};
    r->step = 0;
}

static void run_free(Run *r) {
    optim_free(r->opt);
    ema_free(&r->ema);
    params_free(&r->ps);
}

static TrainState run_state(Run *r) {
    return (TrainState){.params = &r->ps, .opt = r->opt, .rng = &r->rng, .ema = &r->ema, .step = r->step,
                        .lr = lr_at(&r->sched, r->step)};
}

static float run_step(Run *r) {
    t_arena_reset();
    params_zero_grad(&r->ps);
    Tensor *x = t_new(T_SHAPE(16, 8)), *y = t_new(T_SHAPE(16, 4));
    t_fill_normal(x, &r->rng, 0, 1);
    t_fill_uniform(y, &r->rng, -1, 1);
    Param *p = r->ps.items;
    Tensor *out = t_linear(t_gelu(t_linear(x, p[0].t, p[1].t)), p[2].t, p[3].t);
    Tensor *d = t_sub(out, y);
    Tensor *loss = t_mean(t_mul(d, d), 0, NULL, false);
    t_backward(loss);
    clip_grad_norm(&r->ps, 1.0);
    r->opt->cfg.lr = lr_at(&r->sched, r->step);
    optim_step(r->opt);
    ema_update(&r->ema);
    r->step++;
    return loss->data[0];
}

static void assert_same_run(Run *a, Run *b) {
    assert_int_equal(a->step, b->step);
    for (int i = 0; i < a->ps.n; i++) {
        size_t bytes = sizeof(float) * (size_t)t_numel(a->ps.items[i].t);
        assert_memory_equal(a->ps.items[i].t->data, b->ps.items[i].t->data, bytes);
        assert_memory_equal(a->opt->slots[i].m, b->opt->slots[i].m, bytes);
        assert_memory_equal(a->opt->slots[i].v, b->opt->slots[i].v, bytes);
        assert_memory_equal(a->ema.shadow[i], b->ema.shadow[i], bytes);
    }
    assert_int_equal(rng_u32(&a->rng), rng_u32(&b->rng));
}

static void test_resume_bit_identical(void **state) {
    (void)state;
    enum { N = 12 };
    char path[128];
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    float straight[N], resumed[N];
    Run a;
    run_init(&a, 1, 32);
    for (int s = 0; s < N; s++) straight[s] = run_step(&a);

    Run b;
    run_init(&b, 1, 32);
    for (int s = 0; s < N / 2; s++) resumed[s] = run_step(&b);
    TrainState st = run_state(&b);
    assert_int_equal(ckpt_save(path, &st), 0);
    run_free(&b);
    t_arena_reset();

    Run c; /* fresh state from another seed: everything must come from the file */
    run_init(&c, 999, 32);
    st = run_state(&c);
    assert_int_equal(ckpt_load(path, &st), 0);
    c.step = st.step;
    assert_int_equal(c.step, N / 2);
    assert_int_equal(c.opt->step, N / 2);
    for (int s = N / 2; s < N; s++) resumed[s] = run_step(&c);
    assert_memory_equal(straight, resumed, sizeof straight);
    assert_same_run(&a, &c);

    /* the checkpoint is also a plain state dict (non-strict: the optimizer/EMA entries are reported) */
    Run d;
    run_init(&d, 5, 32);
    LoadReport rep;
    assert_int_equal(params_load_file(&d.ps, path, false, NULL, &rep), 0);
    assert_int_equal(rep.loaded, 4);
    assert_int_equal(rep.unexpected, 12);
    run_free(&d);
    run_free(&a);
    run_free(&c);
}

static void test_load_errors(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/plain.safetensors", dir);
    Run a, b;
    run_init(&a, 1, 32);
    run_init(&b, 1, 16); /* other hidden size */
    assert_int_equal(params_save_file(&a.ps, path, NULL), 0);
    TrainState st = run_state(&a);
    assert_int_equal(ckpt_load(path, &st), -1);
    assert_non_null(strstr(t_errmsg(), "not a training checkpoint"));
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    assert_int_equal(ckpt_save(path, &st), 0);
    st = run_state(&b);
    assert_int_equal(ckpt_load(path, &st), -1);
    assert_non_null(strstr(t_errmsg(), path));
    assert_non_null(strstr(t_errmsg(), "wrong shape"));
    ema_swap(&a.ema);
    st = run_state(&a);
    assert_int_equal(ckpt_save(path, &st), -1);
    ema_swap(&a.ema);

    /* the run's config: a resume with other options is refused, naming both; a file without one is read */
    st = run_state(&a);
    st.config = "batch=8 seed=1";
    assert_int_equal(ckpt_save(path, &st), 0);
    st.config = "batch=8 seed=2";
    assert_int_equal(ckpt_load(path, &st), -1);
    assert_non_null(strstr(t_errmsg(), path));
    assert_non_null(strstr(t_errmsg(), "batch=8 seed=1"));
    assert_non_null(strstr(t_errmsg(), "batch=8 seed=2"));
    st.config = "batch=8 seed=1";
    assert_int_equal(ckpt_load(path, &st), 0);
    st = run_state(&a);   /* saved without a config */
    assert_int_equal(ckpt_save(path, &st), 0);
    st.config = "batch=8 seed=2";
    assert_int_equal(ckpt_load(path, &st), 0);
    st.config = "quote\"d";   /* would break the metadata's JSON: refused, nothing written */
    assert_int_equal(ckpt_save(path, &st), -1);
    assert_non_null(strstr(t_errmsg(), "config"));
    run_free(&a);
    run_free(&b);
    clear_dir();
}

/* ---- kill-safety */

static const char *kill_phase;
static void kill_at_phase(const char *phase) {
    if (!strcmp(phase, kill_phase)) raise(SIGKILL);
}

static void fill_all(Run *r, float v) {
    for (int i = 0; i < r->ps.n; i++) init_const(r->ps.items[i].t, v);
    for (int i = 0; i < r->opt->n; i++) {
        int64_t n = optim_slot_numel(r->opt, i);
        for (int64_t k = 0; k < n; k++) r->opt->slots[i].m[k] = r->opt->slots[i].v[k] = v;
    }
    for (int i = 0; i < r->ema.n; i++) {
        int64_t n = t_numel(r->ps.items[r->ema.index[i]].t);
        for (int64_t k = 0; k < n; k++) r->ema.shadow[i][k] = v;
    }
}

/* Loads path into a fresh run and checks that every array holds the value `step` says it should. */
static int64_t load_and_check_consistent(const char *path) {
    Run r;
    run_init(&r, 77, 256);
    TrainState st = run_state(&r);
    if (ckpt_load(path, &st) != 0) fail_msg("checkpoint does not load after a kill: %s", t_errmsg());
    float v = (float)st.step;
    for (int i = 0; i < r.ps.n; i++) {
        int64_t n = t_numel(r.ps.items[i].t);
        for (int64_t k = 0; k < n; k++)
            if (r.ps.items[i].t->data[k] != v || r.opt->slots[i].v[k] != v || r.ema.shadow[i][k] != v)
                fail_msg("checkpoint of step %lld is inconsistent at %s[%lld]", (long long)st.step,
                         r.ps.items[i].name, (long long)k);
    }
    run_free(&r);
    return st.step;
}

static void test_kill_at_each_phase(void **state) {
    (void)state;
    static const char *const phases[] = {"opened", "header", "data", "flushed", "synced", "renamed"};
    char path[128];
    snprintf(path, sizeof path, "%s/phase.safetensors", dir);
    for (size_t ph = 0; ph < sizeof phases / sizeof phases[0]; ph++) {
        Run r;
        run_init(&r, 3, 256);
        fill_all(&r, 1.0f);
        TrainState st = run_state(&r);
        st.step = 1;
        assert_int_equal(ckpt_save(path, &st), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* child: try to overwrite with step 2, die mid-save */
            kill_phase = phases[ph];
            st_set_save_hook(kill_at_phase);
            fill_all(&r, 2.0f);
            st.step = 2;
            ckpt_save(path, &st);
            _exit(3); /* not reached when the hook fires */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        int64_t step = load_and_check_consistent(path);
        /* before the rename the old file is what we get; after it, the new one, complete */
        assert_int_equal(step, strcmp(phases[ph], "renamed") ? 1 : 2);
        run_free(&r);
        clear_dir(); /* the killed save leaves its temporary file behind */
    }
}

/* Removes leftover temporary files of path (what a restarted trainer would do). */
static void clear_temps(const char *path) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    const char *base = strrchr(path, '/') + 1;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, base, strlen(base)) && strstr(e->d_name, ".tmp.")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
}

static void test_kill_during_save_loop(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/loop.safetensors", dir);
    Run r;
    run_init(&r, 3, 256);
    fill_all(&r, 0.0f);
    TrainState st = run_state(&r);
    st.step = 0;
    assert_int_equal(ckpt_save(path, &st), 0);
    int64_t last = 0;
    int mid_save = 0;
    for (int round = 0; round < 6; round++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* child: save step last+1, last+2, ... forever */
            for (int64_t s = last + 1;; s++) {
                fill_all(&r, (float)s);
                st.step = s;
                if (ckpt_save(path, &st) != 0) _exit(4);
            }
        }
        struct timespec ts = {0, (long)(3 + 7 * round) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        mid_save += count_temp_files() > 0; /* a leftover temp file: the kill hit a save in progress */
        clear_temps(path);
        int64_t step = load_and_check_consistent(path);
        assert_true(step >= last);
        last = step;
    }
    printf("kill loop: reached step %lld, %d of 6 kills landed inside a save\n", (long long)last, mid_save);
    assert_true(last > 0);   /* the child really saved over the first checkpoint */
    run_free(&r);
    clear_dir();
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_resume_bit_identical, arena_teardown),
        cmocka_unit_test_teardown(test_load_errors, arena_teardown),
        cmocka_unit_test_teardown(test_kill_at_each_phase, arena_teardown),
        cmocka_unit_test_teardown(test_kill_during_save_loop, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, make_dir, remove_dir);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
