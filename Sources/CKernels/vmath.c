// Elementwise exp, log, tanh and sigmoid. Each body is a branch-free scalar function
// (Cephes single-precision range reduction and minimax polynomials) that clang
// auto-vectorises inside loops compiled three times: for AVX-512F, for AVX2+FMA and for the
// baseline ISA. A function pointer picked on first use dispatches to the best one.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ckernels.h"

#define GVAE_INLINE static inline __attribute__((always_inline))

GVAE_INLINE float bits_to_float(int32_t i) {
  float f;
  memcpy(&f, &i, sizeof f);
  return f;
}

GVAE_INLINE int32_t float_to_bits(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i;
}

// exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x − n·ln 2 with ln 2 split in two parts
// so that r is exact; degree-6 polynomial for exp(r) on |r| ≤ ln2/2 (Cephes expf).
GVAE_INLINE float exp_body(float x) {
  const float hi = 88.3762626647949f, lo = -88.0f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  float fx = floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  float scale = bits_to_float(((int32_t)fx + 127) << 23);
  float y = p * scale;
  y = x > hi ? INFINITY : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
}

// log(x) = e·ln 2 + log(m), m in [sqrt(1/2), sqrt(2)), degree-9 polynomial (Cephes logf).
GVAE_INLINE float log_body(float x) {
  // Denormals: scale into the normal range first.
  int denormal = x < 1.17549435e-38f;
  float xs = denormal ? x * 8388608.0f : x;  // 2^23
  int32_t bits = float_to_bits(xs);
  float e = (float)(((bits >> 23) & 0xff) - 126) - (denormal ? 23.0f : 0.0f);
  float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  int small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  y = m + y;
  y += e * 0.693359375f;
  y = x == INFINITY ? INFINITY : y;
  y = x == 0.0f ? -INFINITY : y;
  y = x < 0.0f ? NAN : y;
  return x != x ? x : y;
}

// tanh: odd polynomial for |x| < 0.625 (where 1 − 2/(e^{2x}+1) would cancel), else
// 1 − 2/(e^{2|x|}+1) with the sign restored (Cephes tanhf). |x| ≥ 9.1 rounds to ±1.
GVAE_INLINE float tanh_body(float x) {
  float ax = fabsf(x);
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = p * z * x + x;
  float axc = ax > 10.0f ? 10.0f : ax;
  float big = 1.0f - 2.0f / (exp_body(axc + axc) + 1.0f);
  big = x < 0.0f ? -big : big;
  float y = ax < 0.625f ? small : big;
  return x != x ? x : y;
}

// sigmoid(x) = 1 / (1 + e^{−x}); e^{−x} overflowing to +inf gives exactly 0.
GVAE_INLINE float sigmoid_body(float x) { return 1.0f / (1.0f + exp_body(-x)); }

// In place (x == y) and disjoint buffers get separate loops: with one pointer, or with
// `restrict`, the vectoriser needs no overlap check (which fails for x == y and falls back
// to scalar code).
#define gvae_loop(body, x, y, n)                                \
  do {                                                          \
    if ((const float *)(y) == (x)) {                            \
      float *p_ = (y);                                          \
      for (size_t i = 0; i < (n); i++) p_[i] = body(p_[i]);     \
    } else {                                                    \
      const float *restrict xr_ = (x);                          \
      float *restrict yr_ = (y);                                \
      for (size_t i = 0; i < (n); i++) yr_[i] = body(xr_[i]);   \
    }                                                           \
  } while (0)

typedef void (*gvae_unary_fn)(const float *, float *, size_t);

#if defined(__x86_64__)
#define GVAE_VARIANTS(name, body)                                                   \
  __attribute__((target("avx512f"))) static void name##_avx512(const float *x,     \
                                                               float *y, size_t n) { \
    gvae_loop(body, x, y, n);                                                     \
  }                                                                                 \
  __attribute__((target("avx2,fma"))) static void name##_avx2(const float *x,      \
                                                              float *y, size_t n) {  \
    gvae_loop(body, x, y, n);                                                     \
  }                                                                                 \
  static void name##_base(const float *x, float *y, size_t n) {                     \
    gvae_loop(body, x, y, n);                                                     \
  }                                                                                 \
  static gvae_unary_fn name##_pick(void) {                                          \
    if (gvae_cpu_has_avx512f()) return name##_avx512;                               \
    if (gvae_cpu_has_avx2_fma()) return name##_avx2;                                \
    return name##_base;                                                             \
  }
#else
#define GVAE_VARIANTS(name, body)                                                   \
  static void name##_base(const float *x, float *y, size_t n) {                     \
    gvae_loop(body, x, y, n);                                                     \
  }                                                                                 \
  static gvae_unary_fn name##_pick(void) { return name##_base; }
#endif

// The dispatch pointer is written once per process with the same value by whichever
// thread gets there first; relaxed atomics keep that race well defined.
#define GVAE_DISPATCH(name)                                                         \
  GVAE_VARIANTS(name, name##_body)                                                  \
  static gvae_unary_fn name##_impl;                                                 \
  void gvae_v##name(const float *x, float *y, size_t n) {                           \
    gvae_unary_fn f = __atomic_load_n(&name##_impl, __ATOMIC_RELAXED);              \
    if (!f) {                                                                       \
      f = name##_pick();                                                            \
      __atomic_store_n(&name##_impl, f, __ATOMIC_RELAXED);                          \
    }                                                                               \
    f(x, y, n);                                                                     \
  }

GVAE_DISPATCH(exp)
GVAE_DISPATCH(log)
GVAE_DISPATCH(tanh)
GVAE_DISPATCH(sigmoid)

const char *gvae_kernel_isa(void) {
  if (gvae_cpu_has_avx512f()) return "avx512f";
  if (gvae_cpu_has_avx2_fma()) return "avx2+fma";
  return "baseline";
}
