/* The progress bar's rate: a bar begun at step `start` of a resumed run counts only the steps done since,
 * so its rate and ETA are those of this run (a resumed run once showed 1000 steps done in its first minute). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "train/progress.h"

static void test_rate_counts_from_start(void **state) {
    (void)state;
    Progress fresh, resumed;
    progress_begin(&fresh, "fresh", 4000, "step");
    progress_begin_at(&resumed, "resumed", 4000, "step", 1000);
    assert_int_equal(fresh.done, 0);
    assert_int_equal(resumed.done, 1000);   /* the bar shows the run's position, not the session's */
    fresh.done = 20;
    resumed.done = 1020;
    double now = resumed.t_start + 10.0;
    assert_true(fabs(progress_rate(&resumed, now) - 2.0) < 1e-9);
    assert_true(fabs(progress_rate(&fresh, fresh.t_start + 10.0) - 2.0) < 1e-9);
    assert_true(progress_rate(&resumed, resumed.t_start) == 0);   /* no time yet: no rate, no division */
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rate_counts_from_start)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
