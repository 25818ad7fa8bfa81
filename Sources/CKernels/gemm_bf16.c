// Mixed-precision GEMM for CPUs with AVX512-BF16: op(A) and op(B) are rounded to bfloat16
// (round to nearest even) while they are packed, and VDPBF16PS multiplies pairs of them with
// float32 accumulation, twice the multiply rate of float32 FMAs. C, alpha and beta stay
// float32. Goto-style blocking: B in KC × NC blocks (L2), A in MC × KC blocks, a 12 × 32
// micro-kernel with 24 accumulators; each 32-bit lane of a packed panel holds one pair
// (k, k + 1), the low half k, which is the layout VDPBF16PS reads.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MR 12
#define NR 32
#define KC 256 /* elements of k per block (128 pairs) */
#define MC 120
#define NC 1536

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

int gvae_cpu_has_avx512_bf16(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") ? 1 : 0;
}

// bfloat16 bits of x, rounded to nearest even; NaN stays a (quiet) NaN.
static inline uint32_t bf16_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

static inline uint32_t pair(float lo, float hi) { return bf16_bits(lo) | (bf16_bits(hi) << 16); }

// 16 lanes of x rounded to bfloat16, the bits in the low (hi = 0) or high half of each lane.
BF16_TARGET static inline __m512i round16(__m512 x, int hi) {
  __m512i u = _mm512_castps_si512(x);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb);
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                          _mm512_set1_epi32(0x7F800000));
  r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
  return hi ? _mm512_and_si512(r, _mm512_set1_epi32((int)0xFFFF0000u)) : _mm512_srli_epi32(r, 16);
}

// Pairs from two rows of 16 (row k low, row k + 1 high): 16 packed lanes.
BF16_TARGET static inline __m512i pairs_across(const float *k0, const float *k1) {
  __m512i lo = round16(_mm512_loadu_ps(k0), 0);
  __m512i hi = k1 ? round16(_mm512_loadu_ps(k1), 1) : _mm512_setzero_si512();
  return _mm512_or_si512(lo, hi);
}

// Pairs from 32 consecutive values x[0..31] (x[2p] low, x[2p + 1] high): 16 packed lanes.
BF16_TARGET static inline __m512i pairs_along(const float *x) {
  __m256i a = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(x), 0));
  __m256i b = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(x + 16), 0));
  return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

// Packs op(X) rows [i0, i0 + rows) (rows ≤ W, zero padded to W), k in [p0, p0 + kc), into
// dst[kp · W + r] = pair(op(X)[r][p0 + 2kp], op(X)[r][p0 + 2kp + 1]). `along`: op(X)'s rows
// are contiguous in k (X[i · ld + k]); else op(X)[r][k] = X[k · ld + r].
BF16_TARGET static void pack_panel(int along, const float *x, size_t ld, size_t i0, size_t rows,
                                   size_t p0, size_t kc, size_t W, uint32_t *dst) {
  size_t kp_n = (kc + 1) / 2;
  if (along) {
    for (size_t r = 0; r < W; r++) {
      if (r >= rows) {
        for (size_t kp = 0; kp < kp_n; kp++) dst[kp * W + r] = 0;
        continue;
      }
      const float *row = x + (i0 + r) * ld + p0;
      size_t kp = 0;
      uint32_t tmp[16];
      for (; 2 * kp + 32 <= kc; kp += 16) {
        _mm512_storeu_si512((void *)tmp, pairs_along(row + 2 * kp));
        for (size_t q = 0; q < 16; q++) dst[(kp + q) * W + r] = tmp[q];
      }
      for (; kp < kp_n; kp++) {
        size_t k = 2 * kp;
        dst[kp * W + r] = pair(row[k], k + 1 < kc ? row[k + 1] : 0.0f);
      }
    }
  } else {
    for (size_t kp = 0; kp < kp_n; kp++) {
      size_t k = p0 + 2 * kp;
      const float *r0 = x + k * ld + i0;
      const float *r1 = 2 * kp + 1 < kc ? x + (k + 1) * ld + i0 : NULL;
      uint32_t *d = dst + kp * W;
      size_t r = 0;
      for (; r + 16 <= rows; r += 16) {
        _mm512_storeu_si512((void *)(d + r), pairs_across(r0 + r, r1 ? r1 + r : NULL));
      }
      for (; r < rows; r++) d[r] = pair(r0[r], r1 ? r1[r] : 0.0f);
      for (; r < W; r++) d[r] = 0;
    }
  }
}

// acc[MR][NR] = Σ_kp A-pair(r, kp) · B-pair(kp, c) over kp_n pairs; then C = alpha·acc +
// beta·C (first) or C += alpha·acc, inside the valid mr × nr corner.
BF16_TARGET static void kernel(size_t kp_n, const uint32_t *ap, const uint32_t *bp, size_t mr,
                               size_t nr, float alpha, float beta, int first, float *c,
                               size_t ldc) {
  __m512 acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (size_t kp = 0; kp < kp_n; kp++) {
    __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(bp + kp * NR));
    __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(bp + kp * NR + 16));
    const uint32_t *a = ap + kp * MR;
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  __m512 va = _mm512_set1_ps(alpha);
  __m512 vb = _mm512_set1_ps(beta);
  for (size_t r = 0; r < mr; r++) {
    float *cr = c + r * ldc;
    for (int h = 0; h < 2; h++) {
      size_t j0 = (size_t)h * 16;
      if (j0 >= nr) break;
      size_t w = nr - j0 < 16 ? nr - j0 : 16;
      __mmask16 m = (__mmask16)((1u << w) - 1u);
      __m512 v = _mm512_mul_ps(va, acc[r][h]);
      if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cr + j0));
      else if (beta != 0) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cr + j0), v);
      _mm512_mask_storeu_ps(cr + j0, m, v);
    }
  }
}

int gvae_sgemm_bf16(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc) {
  if (!gvae_cpu_has_avx512_bf16()) return 0;
  if (m == 0 || n == 0) return 1;
  if (k == 0) {
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
    return 1;
  }
  size_t ncb = n < NC ? n : NC;
  size_t mcb = m < MC ? m : MC;
  uint32_t *bpack = aligned_alloc(64, ((ncb + NR - 1) / NR) * NR * (KC / 2) * 4);
  uint32_t *apack = aligned_alloc(64, ((mcb + MR - 1) / MR) * MR * (KC / 2) * 4);
  if (!bpack || !apack) {
    free(bpack);
    free(apack);
    return 0;
  }
  for (size_t jc = 0; jc < n; jc += NC) {
    size_t nc = n - jc < NC ? n - jc : NC;
    for (size_t pc = 0; pc < k; pc += KC) {
      size_t kc = k - pc < KC ? k - pc : KC;
      size_t kp_n = (kc + 1) / 2;
      int first = pc == 0;
      // op(B) is k × n: its columns are contiguous in k when B is transposed.
      for (size_t jr = 0; jr < nc; jr += NR) {
        size_t nr = nc - jr < NR ? nc - jr : NR;
        pack_panel(trans_b, b, ldb, jc + jr, nr, pc, kc, NR, bpack + (jr / NR) * NR * kp_n);
      }
      for (size_t ic = 0; ic < m; ic += MC) {
        size_t mc = m - ic < MC ? m - ic : MC;
        for (size_t ir = 0; ir < mc; ir += MR) {
          size_t mr = mc - ir < MR ? mc - ir : MR;
          pack_panel(!trans_a, a, lda, ic + ir, mr, pc, kc, MR, apack + (ir / MR) * MR * kp_n);
        }
        for (size_t jr = 0; jr < nc; jr += NR) {
          size_t nr = nc - jr < NR ? nc - jr : NR;
          for (size_t ir = 0; ir < mc; ir += MR) {
            size_t mr = mc - ir < MR ? mc - ir : MR;
            kernel(kp_n, apack + (ir / MR) * MR * kp_n, bpack + (jr / NR) * NR * kp_n, mr, nr,
                   alpha, beta, first, c + (ic + ir) * ldc + jc + jr, ldc);
          }
        }
      }
    }
  }
  free(bpack);
  free(apack);
  return 1;
}

float gvae_round_bf16(float x) {
  uint32_t u = bf16_bits(x) << 16;
  float y;
  memcpy(&y, &u, 4);
  return y;
}

#else
int gvae_cpu_has_avx512_bf16(void) { return 0; }
int gvae_sgemm_bf16(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc) {
  (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda;
  (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
  return 0;
}
float gvae_round_bf16(float x) { return x; }
#endif
