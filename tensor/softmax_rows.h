#ifndef DACLIP_TENSOR_SOFTMAX_ROWS_H
#define DACLIP_TENSOR_SOFTMAX_ROWS_H
/* Row kernels shared by softmax, attention and cross-entropy (internal to tensor/). */
#include <stdint.h>

/* y = softmax(x) over one contiguous row of n (y may alias x). A row whose maximum is -inf (fully
 * masked) becomes all zeros instead of NaN. Returns log(sum(exp(x - max))) + max (the log-sum-exp). */
float t_softmax_row(float *y, const float *x, int64_t n);
/* dx (+)= y * (g - sum(g*y)) for one row: the softmax backward from the saved output y. */
void t_softmax_row_backward(float *dx, const float *y, const float *g, int64_t n, int accumulate);

#endif
