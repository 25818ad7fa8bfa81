// Direct 2-D convolution forward (no im2col columns, no GEMM packing) for AVX-512: a block
// of 32 output channels (two registers) times up to 14 output pixels of one or two output
// rows is accumulated in 28 registers, each input pixel broadcast from memory at an
// immediate offset (the stride is a compile-time constant), so the inner loop is two weight
// loads and up to 28 FMAs. Strides 1 and 2; other cases return 0 and the caller runs
// im2col and GEMM.
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ckernels.h"

#define OB 32  // output channels per block
#define RMAX 14

// Accumulates the block whose first input row pointer is `xp` (already at the block's first
// pixel), writing acc[(q*R + r)*OB + lane] into `out`. `wp` is the block's packed weights
// [C][kh][kw][OB]; `plane` the padded image's floats per channel, `row` its width,
// `rowStep` the floats between the block's two output rows' inputs.
__attribute__((target("avx512f"), always_inline)) static inline void conv_block(
    const float *xp, const float *wp, float *out, int C, int kh, int kw, size_t plane,
    size_t row, size_t rowStep, const int nr, const int R, const int sw) {
  __m512 a0[2][RMAX], a1[2][RMAX];
  for (int q = 0; q < nr; q++)
    for (int r = 0; r < R; r++) {
      a0[q][r] = _mm512_setzero_ps();
      a1[q][r] = _mm512_setzero_ps();
    }
  for (int c = 0; c < C; c++) {
    for (int i = 0; i < kh; i++) {
      const float *src = xp + c * plane + i * row;
      for (int j = 0; j < kw; j++) {
        const __m512 w0 = _mm512_loadu_ps(wp), w1 = _mm512_loadu_ps(wp + 16);
        wp += OB;
        for (int q = 0; q < nr; q++)
          for (int r = 0; r < R; r++) {
            const __m512 v = _mm512_set1_ps(src[q * rowStep + j + r * sw]);
            a0[q][r] = _mm512_fmadd_ps(v, w0, a0[q][r]);
            a1[q][r] = _mm512_fmadd_ps(v, w1, a1[q][r]);
          }
      }
    }
  }
  for (int q = 0; q < nr; q++)
    for (int r = 0; r < R; r++) {
      _mm512_storeu_ps(out + (q * R + r) * OB, a0[q][r]);
      _mm512_storeu_ps(out + (q * R + r) * OB + 16, a1[q][r]);
    }
}

typedef void (*block_fn)(const float *, const float *, float *, int, int, int, size_t, size_t,
                         size_t);

#define BLOCK(NR, R, SW)                                                                       \
  __attribute__((target("avx512f"))) static void block_##NR##_##R##_##SW(                     \
      const float *xp, const float *wp, float *out, int C, int kh, int kw, size_t plane,       \
      size_t row, size_t rowStep) {                                                            \
    conv_block(xp, wp, out, C, kh, kw, plane, row, rowStep, NR, R, SW);                        \
  }
#define BLOCKS(NR, SW)                                                                         \
  BLOCK(NR, 1, SW) BLOCK(NR, 2, SW) BLOCK(NR, 3, SW) BLOCK(NR, 4, SW) BLOCK(NR, 5, SW)         \
  BLOCK(NR, 6, SW) BLOCK(NR, 7, SW)
BLOCKS(1, 1)
BLOCKS(2, 1)
BLOCKS(1, 2)
BLOCKS(2, 2)
BLOCK(1, 8, 1) BLOCK(1, 9, 1) BLOCK(1, 10, 1) BLOCK(1, 11, 1) BLOCK(1, 12, 1) BLOCK(1, 13, 1)
BLOCK(1, 14, 1) BLOCK(1, 8, 2) BLOCK(1, 9, 2) BLOCK(1, 10, 2) BLOCK(1, 11, 2) BLOCK(1, 12, 2)
BLOCK(1, 13, 2) BLOCK(1, 14, 2)

#define ROW7(NR, SW)                                                                           \
  { block_##NR##_1_##SW, block_##NR##_2_##SW, block_##NR##_3_##SW, block_##NR##_4_##SW,        \
    block_##NR##_5_##SW, block_##NR##_6_##SW, block_##NR##_7_##SW }
// [sw - 1][R - 1]: one output row of R ≤ 14 pixels; two rows of R ≤ 7.
static const block_fn one_row[2][RMAX] = {
    {block_1_1_1, block_1_2_1, block_1_3_1, block_1_4_1, block_1_5_1, block_1_6_1, block_1_7_1,
     block_1_8_1, block_1_9_1, block_1_10_1, block_1_11_1, block_1_12_1, block_1_13_1,
     block_1_14_1},
    {block_1_1_2, block_1_2_2, block_1_3_2, block_1_4_2, block_1_5_2, block_1_6_2, block_1_7_2,
     block_1_8_2, block_1_9_2, block_1_10_2, block_1_11_2, block_1_12_2, block_1_13_2,
     block_1_14_2}};
static const block_fn two_rows[2][7] = {ROW7(2, 1), ROW7(2, 2)};

// An output grid (one image, one block of output channels): nq rows of np pixels, the block
// at grid cell (q, p) reading its input from base + q·rowIn + p·colIn (kernel stride sw) and
// writing output pixel (q·oys + oy0, p·oxs + ox0) of `out` (the block's first channel plane,
// Ho × Wo, `lanes` channels). Two grid rows per block when they are at most 7 wide.
typedef struct {
  const float *base;
  size_t rowIn, colIn, plane, Wp;
  int sw, nq, np, C, kh, kw, oys, oy0, oxs, ox0;
} grid;

static void run_grid(const grid *g, const float *wb, float *tmp, float *out, int Ho, int Wo,
                     int lanes) {
  int qi = 0;
  while (qi < g->nq) {
    const int nr = (g->np <= 7 && qi + 1 < g->nq) ? 2 : 1;
    for (int pi = 0; pi < g->np; pi += RMAX) {
      const int R = g->np - pi < RMAX ? g->np - pi : RMAX;
      const float *start = g->base + (size_t)qi * g->rowIn + (size_t)pi * g->colIn;
      if (nr == 2)
        two_rows[g->sw - 1][R - 1](start, wb, tmp, g->C, g->kh, g->kw, g->plane, g->Wp, g->rowIn);
      else
        one_row[g->sw - 1][R - 1](start, wb, tmp, g->C, g->kh, g->kw, g->plane, g->Wp, 0);
      for (int u = 0; u < nr; u++)
        for (int r = 0; r < R; r++) {
          const float *acc = tmp + (u * R + r) * OB;
          const int Y = (qi + u) * g->oys + g->oy0, X = (pi + r) * g->oxs + g->ox0;
          float *dst = out + (size_t)Y * Wo + X;
          for (int l = 0; l < lanes; l++) dst[(size_t)l * Ho * Wo] = acc[l];
        }
    }
    qi += nr;
  }
}

// 64-byte aligned floats (NULL on failure).
static float *floats(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

int gvae_conv2d_direct_supported(int C, int kh, int kw, int sh, int sw, int O) {
  static int avx512 = -1;
  if (avx512 < 0) avx512 = gvae_cpu_has_avx512f();
  (void)sh;
  // Enough work per output pixel to beat columns plus GEMM; channel blocks mostly full.
  return avx512 && (sw == 1 || sw == 2) && C * kh * kw >= 64 && O >= 16;
}

int gvae_conv2d_direct(const float *x, const float *w, float *y, int B, int C, int H, int W,
                       int O, int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
  if (!gvae_conv2d_direct_supported(C, kh, kw, sh, sw, O)) return 0;
  const int blocks = (O + OB - 1) / OB;
  const size_t taps = (size_t)C * kh * kw;
  // The padded image holds every input any output reads.
  const int Hp = (Ho - 1) * sh + kh > H + 2 * ph ? (Ho - 1) * sh + kh : H + 2 * ph;
  const int Wp = (Wo - 1) * sw + kw > W + 2 * pw ? (Wo - 1) * sw + kw : W + 2 * pw;
  const size_t plane = (size_t)Hp * Wp;
  float *wpack = floats((size_t)blocks * taps * OB), *xp = floats((size_t)C * plane),
        *tmp = floats(2 * RMAX * OB);
  if (!wpack || !xp || !tmp) {
    free(wpack);
    free(xp);
    free(tmp);
    return 0;
  }
  // wpack[b][t][lane] = w[b*OB + lane][t] (t = (c*kh + i)*kw + j), zero past O.
  for (int b = 0; b < blocks; b++)
    for (size_t t = 0; t < taps; t++)
      for (int l = 0; l < OB; l++) {
        int o = b * OB + l;
        wpack[((size_t)b * taps + t) * OB + l] = o < O ? w[(size_t)o * taps + t] : 0.0f;
      }
  memset(xp, 0, (size_t)C * plane * sizeof(float));
  for (int n = 0; n < B; n++) {
    const float *img = x + (size_t)n * C * H * W;
    for (int c = 0; c < C; c++)
      for (int r = 0; r < H; r++)
        memcpy(xp + c * plane + (size_t)(r + ph) * Wp + pw, img + ((size_t)c * H + r) * W,
               W * sizeof(float));
    float *out = y + (size_t)n * O * Ho * Wo;
    for (int b = 0; b < blocks; b++) {
      const float *wb = wpack + (size_t)b * taps * OB;
      const int lanes = O - b * OB < OB ? O - b * OB : OB;
      const grid g = {xp, (size_t)sh * Wp, (size_t)sw, plane, Wp, sw, Ho, Wo, C, kh, kw, 1, 0, 1, 0};
      run_grid(&g, wb, tmp, out + (size_t)(b * OB) * Ho * Wo, Ho, Wo, lanes);
    }
  }
  free(wpack);
  free(xp);
  free(tmp);
  return 1;
}

// Transposed convolution by output phases: the outputs Y ≡ r (mod stride) receive exactly
// the taps i ≡ (r + p) (mod stride), so each phase is a stride-1 correlation of the input
// with a flipped sub-kernel, run by the same blocks; its outputs land `stride` apart.
int gvae_conv2d_transpose_direct(const float *x, const float *w, float *y, int B, int Cin, int H,
                                 int W, int O, int kh, int kw, int sh, int sw, int ph, int pw,
                                 int Ho, int Wo) {
  static int avx512 = -1;
  if (avx512 < 0) avx512 = gvae_cpu_has_avx512f();
  const int Ty = (kh + sh - 1) / sh, Tx = (kw + sw - 1) / sw;  // most taps of any phase
  if (!avx512 || O < 16 || Cin * (kh / sh) * (kw / sw) < 64) return 0;
  const int blocks = (O + OB - 1) / OB;
  // Input padded by Ty-1 rows and Tx-1 columns before it, and enough after it for the last
  // output of every phase (rows up to (Ho-1+ph)/sh, columns up to (Wo-1+pw)/sw).
  const int qyMax = (Ho - 1 + ph) / sh, qxMax = (Wo - 1 + pw) / sw;
  const int Hp = (Ty - 1) + (qyMax + 1 > H ? qyMax + 1 : H) + 1;
  const int Wp = (Tx - 1) + (qxMax + 1 > W ? qxMax + 1 : W) + 1;
  const size_t plane = (size_t)Hp * Wp;
  const size_t taps = (size_t)Cin * Ty * Tx;
  const size_t wsize = (size_t)sh * sw * blocks * taps * OB;
  float *wpack = floats(wsize), *xp = floats((size_t)Cin * plane), *tmp = floats(2 * RMAX * OB);
  if (!wpack || !xp || !tmp) {
    free(wpack);
    free(xp);
    free(tmp);
    return 0;
  }
  // Phase (ry, rx) of the output, r = (Y + p) mod s: taps i = ry + t·sh (t < ty), read in
  // flipped order t' = ty-1-t, so input row q - (ty-1) + t' where q = (Y + ph - ry) / sh.
  // Packed [phase][block][c][t'y][t'x][lane] over the phase's own ty × tx taps.
  for (int ry = 0; ry < sh; ry++)
    for (int rx = 0; rx < sw; rx++) {
      const int ty = ry < kh ? (kh - ry + sh - 1) / sh : 0;
      const int tx = rx < kw ? (kw - rx + sw - 1) / sw : 0;
      float *wp = wpack + (size_t)(ry * sw + rx) * blocks * taps * OB;
      for (int b = 0; b < blocks; b++)
        for (int c = 0; c < Cin; c++)
          for (int a = 0; a < ty; a++)
            for (int e = 0; e < tx; e++)
              for (int l = 0; l < OB; l++) {
                const int o = b * OB + l;
                const int i = ry + (ty - 1 - a) * sh, j = rx + (tx - 1 - e) * sw;
                *wp++ = o < O ? w[(((size_t)c * O + o) * kh + i) * kw + j] : 0.0f;
              }
    }
  memset(xp, 0, (size_t)Cin * plane * sizeof(float));
  for (int n = 0; n < B; n++) {
    const float *img = x + (size_t)n * Cin * H * W;
    for (int c = 0; c < Cin; c++)
      for (int r = 0; r < H; r++)
        memcpy(xp + c * plane + (size_t)(r + Ty - 1) * Wp + Tx - 1, img + ((size_t)c * H + r) * W,
               W * sizeof(float));
    float *out = y + (size_t)n * O * Ho * Wo;
    for (int ry = 0; ry < sh; ry++)
      for (int rx = 0; rx < sw; rx++) {
        const int ty = ry < kh ? (kh - ry + sh - 1) / sh : 0;
        const int tx = rx < kw ? (kw - rx + sw - 1) / sw : 0;
        // Output rows Y = q·sh + ry − ph in [0, Ho): q from q0 to q1; columns likewise.
        const int q0 = (ph - ry + sh - 1) / sh > 0 ? (ph - ry + sh - 1) / sh : 0;
        const int q1 = (Ho - 1 + ph - ry) / sh;
        const int p0 = (pw - rx + sw - 1) / sw > 0 ? (pw - rx + sw - 1) / sw : 0;
        const int p1 = (Wo - 1 + pw - rx) / sw;
        if (q1 < q0 || p1 < p0) continue;
        const int nq = q1 - q0 + 1, np = p1 - p0 + 1;
        if (ty == 0 || tx == 0) {  // no tap reaches this phase
          for (int o = 0; o < O; o++)
            for (int q = q0; q <= q1; q++)
              for (int p = p0; p <= p1; p++)
                out[((size_t)o * Ho + q * sh + ry - ph) * Wo + p * sw + rx - pw] = 0;
          continue;
        }
        const float *wphase = wpack + (size_t)(ry * sw + rx) * blocks * taps * OB;
        const size_t ptaps = (size_t)Cin * ty * tx;
        for (int b = 0; b < blocks; b++) {
          const float *wb = wphase + (size_t)b * ptaps * OB;
          const int lanes = O - b * OB < OB ? O - b * OB : OB;
          // Padded input row of tap t' = 0 for grid row q: q − (ty−1) + (Ty−1); column likewise.
          const grid g = {xp + (size_t)(q0 - ty + Ty) * Wp + (p0 - tx + Tx), Wp, 1, plane, Wp, 1, nq, np,
                          Cin, ty, tx, sh, q0 * sh + ry - ph, sw, p0 * sw + rx - pw};
          run_grid(&g, wb, tmp, out + (size_t)(b * OB) * Ho * Wo, Ho, Wo, lanes);
        }
      }
  }
  free(wpack);
  free(xp);
  free(tmp);
  return 1;
}
