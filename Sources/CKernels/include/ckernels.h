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

/// 1 when the CPU supports AVX512-BF16 (VDPBF16PS), else 0.
int gvae_cpu_has_avx512_bf16(void);

/// Row-major C = alpha · op(A) · op(B) + beta · C with op(A) [m, k] and op(B) [k, n] rounded
/// to bfloat16 (nearest even) and float32 accumulation. Returns 0 (C untouched) when the CPU
/// lacks AVX512-BF16 or memory runs out, else 1.
int gvae_sgemm_bf16(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc);
/// x rounded to bfloat16 (nearest even) and back: what gvae_sgemm_bf16 multiplies.
float gvae_round_bf16(float x);

/// The instruction set the kernels below dispatch to: "avx512f", "avx2+fma" or "baseline".
const char *gvae_kernel_isa(void);

/// Keeps large freed blocks in the heap instead of returning them to the kernel (glibc).
void gvae_keep_large_blocks(void);

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

/// GRU gate math for `rows` rows (PyTorch equations, gate order r, z, n; row b of each
/// argument starts at b · its stride). Forward: `gi` [3H] input pre-activations with b_ih
/// and the recurrent r, z biases included, `gh` [3H] = h_prev · W_hhᵀ, `bhn` [H] = b_hn,
/// `hprev` [H] (NULL: zeros); writes h_t into `hnext` [H] and r, z, n, W_hn h + b_hn into
/// `gates` [4H].
void gvae_gru_forward_rows(size_t rows, size_t H, const float *gi, size_t gi_stride,
                           const float *gh, size_t gh_stride, const float *bhn,
                           const float *hprev, size_t hprev_stride, float *hnext,
                           size_t hnext_stride, float *gates, size_t gates_stride);
/// Backward of one step for `rows` rows: from the saved `gates` [4H], `hprev` [H] (NULL:
/// zeros), the output gradient `dy` [H] and `dh` [H] (dL/dh_t from later steps), writes
/// [da_r, da_z, da_n · r, da_n] into `out` [4H] and z · (dy + dh) into `dh`.
void gvae_gru_backward_rows(size_t rows, size_t H, const float *gates, size_t gates_stride,
                            const float *hprev, size_t hprev_stride, const float *dy,
                            size_t dy_stride, float *dh, size_t dh_stride, float *out,
                            size_t out_stride);

/// Single-threaded packed GEMM (the fallback when no BLAS library loads). Row-major:
/// C = alpha * op(A) * op(B) + beta * C with op(A) [m, k], op(B) [k, n]. When beta == 0,
/// C is not read (NaN in C does not propagate), as in BLAS.
void gvae_sgemm(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
                const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                size_t ldc);

/// im2col of one image [C, H, W] into columns [C*kh*kw, Ho*Wo] (row stride `ld`):
/// col[(c*kh + i)*kw + j][oy*Wo + ox] = img[c][oy*sh − ph + i][ox*sw − pw + j], zero outside.
/// Returns 0 without writing when the CPU lacks AVX-512F or W > 32, Wo > 16 or kw > 16.
int gvae_im2col_narrow(const float *img, float *col, size_t ld, int C, int H, int W, int kh,
                       int kw, int sh, int sw, int ph, int pw, int Ho, int Wo);
/// The adjoint: adds every column entry into its image pixel. Same conditions.
int gvae_col2im_narrow(const float *col, size_t ld, float *img, int C, int H, int W, int kh,
                       int kw, int sh, int sw, int ph, int pw, int Ho, int Wo);

/// Direct 2-D convolution forward without bias, NCHW: y[b][o][oy][ox] = Σ w[o][c][i][j] ·
/// x[b][c][oy*sh − ph + i][ox*sw − pw + j] (zero outside). Returns 0 without writing unless
/// `gvae_conv2d_direct_supported` (AVX-512F, stride 1 or 2 across, C*kh*kw ≥ 64, O ≥ 16) and
/// its scratch buffers could be allocated.
int gvae_conv2d_direct(const float *x, const float *w, float *y, int B, int C, int H, int W,
                       int O, int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo);
int gvae_conv2d_direct_supported(int C, int kh, int kw, int sh, int sw, int O);
/// Direct transposed convolution (the adjoint of the above; also a convolution's input
/// gradient), NCHW, weights [Cin][O][kh][kw]: y[b][o][Y][X] = Σ w[c][o][i][j] · x[b][c][iy][ix]
/// over Y = iy*sh − ph + i, X = ix*sw − pw + j, y written in full. Returns 0 without writing
/// unless AVX-512F, O ≥ 16 and Cin*(kh/sh)*(kw/sw) ≥ 64 (and its buffers could be allocated).
int gvae_conv2d_transpose_direct(const float *x, const float *w, float *y, int B, int Cin, int H,
                                 int W, int O, int kh, int kw, int sh, int sw, int ph, int pw,
                                 int Ho, int Wo);

#endif
