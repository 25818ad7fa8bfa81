// Vectorised elementwise kernels, a fallback GEMM and CPU feature queries. Compiled by
// clang with per-function target attributes (AVX-512F, AVX2+FMA, baseline) and dispatched
// at run time, so no build flags are needed.
#ifndef GVAE_CKERNELS_H
#define GVAE_CKERNELS_H
#include <stddef.h>

/// 1 when the CPU supports AVX-512F, else 0.
int gvae_cpu_has_avx512f(void);
/// 1 when the CPU supports AVX2 and FMA, else 0.
int gvae_cpu_has_avx2_fma(void);

/// The instruction set the kernels below dispatch to: "avx512f", "avx2+fma" or "baseline".
const char *gvae_kernel_isa(void);

// Elementwise transcendental functions, y[i] = f(x[i]) for i < n. `x` and `y` may be the
// same buffer; otherwise they must not overlap. Cephes-style range reduction and polynomials: relative error about 1e-7
// (exp, log, sigmoid) and 2e-7 (tanh) on normal inputs.
//   exp: x < -88.0 gives 0 (denormal results are flushed), x > 88.37 gives +inf.
//   log: 0 gives -inf, negative gives NaN, +inf gives +inf; denormals handled.
//   NaN in, NaN out for all four.
void gvae_vexp(const float *x, float *y, size_t n);
void gvae_vlog(const float *x, float *y, size_t n);
void gvae_vtanh(const float *x, float *y, size_t n);
void gvae_vsigmoid(const float *x, float *y, size_t n);

/// Single-threaded packed GEMM (the fallback when no BLAS library loads). Row-major:
/// C = alpha * op(A) * op(B) + beta * C with op(A) [m, k], op(B) [k, n]. When beta == 0,
/// C is not read (NaN in C does not propagate), as in BLAS.
void gvae_sgemm(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
                const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                size_t ldc);

#endif
