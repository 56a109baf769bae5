#ifndef DACLIP_NN_GEGLU_H
#define DACLIP_NN_GEGLU_H
/* attention.FeedForward(dim, mult=4, glu=True) = Sequential(GEGLU(dim, 4·dim), Dropout(0), Linear(4·dim, dim)):
 *   "prefix.net.0.proj.{weight [8·dim, dim], bias}"  then  a, g = halves; a·gelu(g) (exact GELU)
 *   "prefix.net.2.{weight [dim, 4·dim], bias}" */
#include "nn/linear.h"

typedef struct {
    Linear proj;   /* net.0.proj */
    Linear out;    /* net.2 */
} FeedForwardGEGLU;

void geglu_ff_init(FeedForwardGEGLU *f, ParamSet *ps, const char *prefix, int64_t dim, int mult, TRng *r);
Tensor *geglu_ff_forward(const FeedForwardGEGLU *f, Tensor *x);   /* [..., dim] -> [..., dim] */


#endif
