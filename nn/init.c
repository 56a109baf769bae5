/* PyTorch's default initialisers. nn.Linear / nn.Conv2d call kaiming_uniform_(w, a=sqrt(5)):
 * gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in);
 * their bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)). fan_in = in_features, or Cin * kh * kw for conv. */
#include <math.h>

#include "nn/module.h"

void init_kaiming_uniform(Tensor *w, TRng *r, int64_t fan_in) {
    float bound = fan_in > 0 ? 1.0f / sqrtf((float)fan_in) : 0.0f;
    t_fill_uniform(w, r, -bound, bound);
}

/* With a = sqrt(5) the weight bound and the bias bound coincide. */
void init_uniform_fan_in(Tensor *b, TRng *r, int64_t fan_in) { init_kaiming_uniform(b, r, fan_in); }

void init_normal(Tensor *t, TRng *r, float std) { t_fill_normal(t, r, 0.0f, std); }

void init_const(Tensor *t, float v) {
    int64_t n = t_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = v;
}
