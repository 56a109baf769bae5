#ifndef DACLIP_NN_UPDOWN_H
#define DACLIP_NN_UPDOWN_H
/* The U-Net's resolution changes (module_util.Downsample / Upsample).
 *   Downsample(dim, dim_out): Conv2d 4×4, stride 2, pad 1, bias            -> "prefix.weight", "prefix.bias"
 *   Upsample(dim, dim_out):   Sequential(nearest ×2, Conv2d 3×3 pad 1 bias) -> "prefix.1.weight", "prefix.1.bias"
 * (The deepest level's plain 3×3 bias-free conv is a Conv2d.) */
#include "nn/conv2d.h"

typedef struct {
    Conv2d conv;
} Downsample;

typedef struct {
    Conv2d conv;   /* Sequential index 1 */
} Upsample;

void downsample_init(Downsample *d, ParamSet *ps, const char *prefix, int64_t dim, int64_t dim_out, TRng *r);
Tensor *downsample_forward(const Downsample *d, Tensor *x);   /* [N, dim, H, W] -> [N, dim_out, H/2, W/2] */

void upsample_init(Upsample *u, ParamSet *ps, const char *prefix, int64_t dim, int64_t dim_out, TRng *r);
Tensor *upsample_forward(const Upsample *u, Tensor *x);       /* [N, dim, H, W] -> [N, dim_out, 2H, 2W] */

#endif
