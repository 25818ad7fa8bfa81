// Vectorised elementwise kernels and CPU feature queries. Compiled by clang with
// per-function target attributes and runtime dispatch, so no build flags are needed.
#ifndef GVAE_CKERNELS_H
#define GVAE_CKERNELS_H
#include <stddef.h>

/// 1 when the CPU supports AVX-512F, else 0.
int gvae_cpu_has_avx512f(void);
/// 1 when the CPU supports AVX2 and FMA, else 0.
int gvae_cpu_has_avx2_fma(void);

#endif
