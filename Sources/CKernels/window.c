// im2col and col2im of one image for narrow images (width ≤ 32, output width ≤ 16), the
// sizes of MNIST-scale convolutions. A whole image row sits in two AVX-512 registers, so
// each column row (one kernel tap, one output row) is one permute and one masked store,
// whatever the stride and padding: no per-element loop. Other sizes or CPUs return 0 and
// the caller runs its general loop.
#include <immintrin.h>

#include "ckernels.h"

#define MAX_TAPS 16

static inline __mmask16 low_bits(int n) {
  return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

static int narrow_fits(int W, int kw, int Wo) {
  static int avx512 = -1;
  if (avx512 < 0) avx512 = gvae_cpu_has_avx512f();
  return avx512 && W <= 32 && Wo <= 16 && kw <= MAX_TAPS;
}

__attribute__((target("avx512f"))) static void im2col_avx512(
    const float *img, float *col, size_t ld, int C, int H, int W, int kh, int kw, int sh,
    int sw, int ph, int pw, int Ho, int Wo) {
  __m512i idx[MAX_TAPS];
  __mmask16 take[MAX_TAPS];
  for (int j = 0; j < kw; j++) {
    int lanes[16];
    take[j] = 0;
    for (int ox = 0; ox < 16; ox++) {
      int x = ox * sw - pw + j;
      int in = ox < Wo && x >= 0 && x < W;
      lanes[ox] = in ? x : 0;
      if (in) take[j] |= (__mmask16)(1u << ox);
    }
    idx[j] = _mm512_loadu_si512(lanes);
  }
  const __mmask16 store = low_bits(Wo), lo = low_bits(W), hi = low_bits(W - 16);
  const __m512 zero = _mm512_setzero_ps();
  for (int c = 0; c < C; c++) {
    for (int i = 0; i < kh; i++) {
      float *dst = col + (size_t)(c * kh + i) * kw * ld;
      for (int oy = 0; oy < Ho; oy++) {
        int y = oy * sh - ph + i;
        float *row = dst + (size_t)oy * Wo;
        if (y < 0 || y >= H) {
          for (int j = 0; j < kw; j++) _mm512_mask_storeu_ps(row + j * ld, store, zero);
          continue;
        }
        const float *src = img + (size_t)(c * H + y) * W;
        __m512 a = _mm512_maskz_loadu_ps(lo, src);
        __m512 b = _mm512_maskz_loadu_ps(hi, src + 16);
        for (int j = 0; j < kw; j++)
          _mm512_mask_storeu_ps(row + j * ld, store, _mm512_maskz_permutex2var_ps(take[j], a, idx[j], b));
      }
    }
  }
}

__attribute__((target("avx512f"))) static void col2im_avx512(
    const float *col, size_t ld, float *img, int C, int H, int W, int kh, int kw, int sh,
    int sw, int ph, int pw, int Ho, int Wo) {
  // Image column x (lane x of the low register, x − 16 of the high one) receives tap j's
  // output column (x + pw − j) / sw when that divides exactly and lies in the row.
  __m512i idx[2][MAX_TAPS];
  __mmask16 take[2][MAX_TAPS];
  for (int j = 0; j < kw; j++) {
    for (int h = 0; h < 2; h++) {
      int lanes[16];
      take[h][j] = 0;
      for (int l = 0; l < 16; l++) {
        int x = 16 * h + l, t = x + pw - j;
        int in = x < W && t >= 0 && t % sw == 0 && t / sw < Wo;
        lanes[l] = in ? t / sw : 0;
        if (in) take[h][j] |= (__mmask16)(1u << l);
      }
      idx[h][j] = _mm512_loadu_si512(lanes);
    }
  }
  const __mmask16 load = low_bits(Wo), lo = low_bits(W), hi = low_bits(W - 16);
  for (int c = 0; c < C; c++) {
    for (int i = 0; i < kh; i++) {
      const float *src = col + (size_t)(c * kh + i) * kw * ld;
      for (int oy = 0; oy < Ho; oy++) {
        int y = oy * sh - ph + i;
        if (y < 0 || y >= H) continue;
        const float *row = src + (size_t)oy * Wo;
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        for (int j = 0; j < kw; j++) {
          __m512 s = _mm512_maskz_loadu_ps(load, row + j * ld);
          a = _mm512_add_ps(a, _mm512_maskz_permutexvar_ps(take[0][j], idx[0][j], s));
          b = _mm512_add_ps(b, _mm512_maskz_permutexvar_ps(take[1][j], idx[1][j], s));
        }
        float *dst = img + (size_t)(c * H + y) * W;
        _mm512_mask_storeu_ps(dst, lo, _mm512_add_ps(_mm512_maskz_loadu_ps(lo, dst), a));
        if (hi) _mm512_mask_storeu_ps(dst + 16, hi, _mm512_add_ps(_mm512_maskz_loadu_ps(hi, dst + 16), b));
      }
    }
  }
}

int gvae_im2col_narrow(const float *img, float *col, size_t ld, int C, int H, int W, int kh,
                       int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
  if (!narrow_fits(W, kw, Wo)) return 0;
  im2col_avx512(img, col, ld, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
  return 1;
}

int gvae_col2im_narrow(const float *col, size_t ld, float *img, int C, int H, int W, int kh,
                       int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
  if (!narrow_fits(W, kw, Wo)) return 0;
  col2im_avx512(col, ld, img, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
  return 1;
}
