// Fallback single-precision GEMM for machines without a BLAS library: packs op(A) into
// MR-row panels and op(B) into NR-column panels (zero padded, which also absorbs the
// transposes), then runs a register-blocked MR × NR micro-kernel written with clang
// vector extensions. Blocked over k and n so the packed panels stay in cache.
// Compiled for AVX-512F, AVX2+FMA and baseline; dispatched at run time.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckernels.h"

#define KC 256
#define NC 1024

// Packs rows [i0, i0+mr) of op(A), columns [p0, p0+kc) into dst[p * MR + r].
static void pack_a(int trans, const float *a, size_t lda, size_t i0, size_t mr, size_t p0,
                   size_t kc, size_t MR, float *dst) {
  for (size_t p = 0; p < kc; p++) {
    for (size_t r = 0; r < MR; r++) {
      float v = 0;
      if (r < mr) v = trans ? a[(p0 + p) * lda + i0 + r] : a[(i0 + r) * lda + p0 + p];
      dst[p * MR + r] = v;
    }
  }
}

// Packs rows [p0, p0+kc) of op(B), columns [j0, j0+nr) into dst[p * NR + c].
static void pack_b(int trans, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0,
                   size_t nr, size_t NR, float *dst) {
  for (size_t p = 0; p < kc; p++) {
    for (size_t c = 0; c < NR; c++) {
      float v = 0;
      if (c < nr) v = trans ? b[(j0 + c) * ldb + p0 + p] : b[(p0 + p) * ldb + j0 + c];
      dst[p * NR + c] = v;
    }
  }
}

// Writes an MR × NR accumulator tile into C: C = alpha·acc + beta·C (first k block) or
// C += alpha·acc (later k blocks), only inside the valid mr × nr corner.
static inline void store_tile(const float *acc, size_t NR, size_t mr, size_t nr, float alpha,
                              float beta, int first, float *c, size_t ldc) {
  for (size_t r = 0; r < mr; r++) {
    for (size_t j = 0; j < nr; j++) {
      float v = alpha * acc[r * NR + j];
      float *dst = &c[r * ldc + j];
      if (!first) *dst += v;
      else if (beta == 0) *dst = v;
      else *dst = v + beta * *dst;
    }
  }
}

// One micro-kernel per vector width W (floats per vector): MR = 6 rows, NR = 2·W columns,
// 12 vector accumulators.
#define GVAE_GEMM_VARIANT(suffix, target_attr, W)                                         \
  typedef float v##suffix __attribute__((vector_size(W * 4), aligned(4)));                \
  target_attr static void kernel_##suffix(size_t kc, const float *ap, const float *bp,   \
                                          float *acc) {                                   \
    v##suffix c[6][2];                                                                    \
    for (int r = 0; r < 6; r++) c[r][0] = c[r][1] = (v##suffix){0};                      \
    for (size_t p = 0; p < kc; p++) {                                                     \
      v##suffix b0, b1;                                                                   \
      memcpy(&b0, bp + p * 2 * W, sizeof b0);                                             \
      memcpy(&b1, bp + p * 2 * W + W, sizeof b1);                                         \
      for (int r = 0; r < 6; r++) {                                                       \
        float a = ap[p * 6 + r];                                                          \
        c[r][0] += a * b0;                                                                \
        c[r][1] += a * b1;                                                                \
      }                                                                                   \
    }                                                                                     \
    for (int r = 0; r < 6; r++) {                                                         \
      memcpy(acc + r * 2 * W, &c[r][0], sizeof c[r][0]);                                  \
      memcpy(acc + r * 2 * W + W, &c[r][1], sizeof c[r][1]);                              \
    }                                                                                     \
  }                                                                                       \
  target_attr static void gemm_##suffix(int ta, int tb, size_t m, size_t n, size_t k,    \
                                        float alpha, const float *a, size_t lda,          \
                                        const float *b, size_t ldb, float beta, float *c, \
                                        size_t ldc) {                                     \
    const size_t MR = 6, NR = 2 * W;                                                      \
    size_t mp = (m + MR - 1) / MR;                                                        \
    float *apack = malloc(sizeof(float) * mp * MR * KC);                                  \
    float *bpack = malloc(sizeof(float) * (NC / NR + 1) * NR * KC);                       \
    float acc[6 * 2 * W];                                                                 \
    if (k == 0) {                                                                         \
      for (size_t i = 0; i < m; i++)                                                      \
        for (size_t j = 0; j < n; j++)                                                    \
          c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];                        \
    }                                                                                     \
    for (size_t p0 = 0; p0 < k; p0 += KC) {                                               \
      size_t kc = k - p0 < KC ? k - p0 : KC;                                              \
      for (size_t ib = 0; ib < mp; ib++) {                                                \
        size_t i0 = ib * MR, mr = m - i0 < MR ? m - i0 : MR;                              \
        pack_a(ta, a, lda, i0, mr, p0, kc, MR, apack + ib * MR * kc);                     \
      }                                                                                   \
      for (size_t j0 = 0; j0 < n; j0 += NC) {                                             \
        size_t nc = n - j0 < NC ? n - j0 : NC;                                            \
        size_t np = (nc + NR - 1) / NR;                                                   \
        for (size_t jb = 0; jb < np; jb++) {                                              \
          size_t jj = j0 + jb * NR, nr = n - jj < NR ? n - jj : NR;                       \
          pack_b(tb, b, ldb, p0, kc, jj, nr, NR, bpack + jb * NR * kc);                   \
        }                                                                                 \
        for (size_t jb = 0; jb < np; jb++) {                                              \
          size_t jj = j0 + jb * NR, nr = n - jj < NR ? n - jj : NR;                       \
          for (size_t ib = 0; ib < mp; ib++) {                                            \
            size_t i0 = ib * MR, mr = m - i0 < MR ? m - i0 : MR;                          \
            kernel_##suffix(kc, apack + ib * MR * kc, bpack + jb * NR * kc, acc);         \
            store_tile(acc, NR, mr, nr, alpha, beta, p0 == 0, c + i0 * ldc + jj, ldc);    \
          }                                                                               \
        }                                                                                 \
      }                                                                                   \
    }                                                                                     \
    free(apack);                                                                          \
    free(bpack);                                                                          \
  }

typedef void (*gvae_gemm_fn)(int, int, size_t, size_t, size_t, float, const float *, size_t,
                             const float *, size_t, float, float *, size_t);

#if defined(__x86_64__)
GVAE_GEMM_VARIANT(x16, __attribute__((target("avx512f"))), 16)
GVAE_GEMM_VARIANT(x8, __attribute__((target("avx2,fma"))), 8)
#endif
GVAE_GEMM_VARIANT(x4, , 4)

static gvae_gemm_fn gemm_pick(void) {
#if defined(__x86_64__)
  if (gvae_cpu_has_avx512f()) return gemm_x16;
  if (gvae_cpu_has_avx2_fma()) return gemm_x8;
#endif
  return gemm_x4;
}

static gvae_gemm_fn gemm_impl;

void gvae_sgemm(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
                const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                size_t ldc) {
  if (m == 0 || n == 0) return;
  gvae_gemm_fn f = __atomic_load_n(&gemm_impl, __ATOMIC_RELAXED);
  if (!f) {
    f = gemm_pick();
    __atomic_store_n(&gemm_impl, f, __ATOMIC_RELAXED);
  }
  f(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
