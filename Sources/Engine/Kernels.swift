import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Vectorised elementwise kernels (C, AVX-512F / AVX2+FMA / baseline chosen at run time),
/// public so fused layers elsewhere (the GRU gates in NN) can run them on raw buffers.
///
/// Relative error about 1e-7 against double precision on normal inputs. `x` and `y` may
/// be the same buffer; otherwise they must not overlap. `exp` flushes results below about 1e-38 to 0 and overflows to +inf
/// above 88.37; `log(0) = -inf`, `log(negative) = NaN`; NaN propagates.
public enum Kernels {
  /// The instruction set the kernels dispatch to: "avx512f", "avx2+fma" or "baseline".
  public static var instructionSet: String { String(cString: gvae_kernel_isa()) }

  public static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    gvae_vexp(x, y, count)
  }
  public static func log(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    gvae_vlog(x, y, count)
  }
  public static func tanh(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    gvae_vtanh(x, y, count)
  }
  public static func sigmoid(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int
  ) {
    gvae_vsigmoid(x, y, count)
  }

  /// GRU forward gate math for `rows` rows (row `b` of each buffer at `b ×` its stride):
  /// `gi` [3H] input pre-activations including `b_ih` and the recurrent r, z biases, `gh`
  /// [3H] = h_{t−1}·W_hhᵀ, `biasHN` [H] = b_hn, `hPrev` [H] (nil: zeros). Writes h_t to
  /// `hNext` [H] and r, z, n, W_hn h + b_hn to `gates` [4H].
  public static func gruForwardRows(
    _ rows: Int, hidden H: Int, gi: UnsafePointer<Float>, giStride: Int,
    gh: UnsafePointer<Float>, ghStride: Int, biasHN: UnsafePointer<Float>,
    hPrev: UnsafePointer<Float>?, hPrevStride: Int, hNext: UnsafeMutablePointer<Float>,
    hNextStride: Int, gates: UnsafeMutablePointer<Float>, gatesStride: Int
  ) {
    gvae_gru_forward_rows(
      rows, H, gi, giStride, gh, ghStride, biasHN, hPrev, hPrevStride, hNext, hNextStride,
      gates, gatesStride)
  }

  /// GRU backward gate math of one step for `rows` rows: from the saved `gates` [4H],
  /// `hPrev` [H] (nil: zeros), the output gradient `dy` [H] and `dh` [H] (dL/dh_t from later
  /// steps), writes [da_r, da_z, da_n·r, da_n] to `out` [4H] and z ⊙ (dy + dh) to `dh`.
  public static func gruBackwardRows(
    _ rows: Int, hidden H: Int, gates: UnsafePointer<Float>, gatesStride: Int,
    hPrev: UnsafePointer<Float>?, hPrevStride: Int, dy: UnsafePointer<Float>, dyStride: Int,
    dh: UnsafeMutablePointer<Float>, dhStride: Int, out: UnsafeMutablePointer<Float>,
    outStride: Int
  ) {
    gvae_gru_backward_rows(
      rows, H, gates, gatesStride, hPrev, hPrevStride, dy, dyStride, dh, dhStride, out,
      outStride)
  }

  /// im2col of one image [C, H, W] into columns [C·kh·kw, Ho·Wo] with row stride `ld`
  /// (geometry as `(C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)`), vectorised for narrow
  /// images (W ≤ 32, Wo ≤ 16, kw ≤ 16, AVX-512F). Returns false, writing nothing, otherwise.
  public static func im2colNarrow(
    _ img: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, ld: Int,
    _ g: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)
  ) -> Bool {
    gvae_im2col_narrow(
      img, col, ld, Int32(g.0), Int32(g.1), Int32(g.2), Int32(g.3), Int32(g.4), Int32(g.5),
      Int32(g.6), Int32(g.7), Int32(g.8), Int32(g.9), Int32(g.10)) != 0
  }

  /// The adjoint of `im2colNarrow`: adds the columns into the image. Same conditions.
  public static func col2imNarrow(
    _ col: UnsafePointer<Float>, ld: Int, _ img: UnsafeMutablePointer<Float>,
    _ g: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)
  ) -> Bool {
    gvae_col2im_narrow(
      col, ld, img, Int32(g.0), Int32(g.1), Int32(g.2), Int32(g.3), Int32(g.4), Int32(g.5),
      Int32(g.6), Int32(g.7), Int32(g.8), Int32(g.9), Int32(g.10)) != 0
  }

  /// Direct convolution forward (no bias) of a batch [B, C, H, W] with weights [O, C, kh, kw]
  /// into `y` [B, O, Ho, Wo]; false without writing where it does not apply (see
  /// `gvae_conv2d_direct`), and the caller runs im2col and GEMM.
  public static func conv2DDirect(
    _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int,
    outputs: Int, _ g: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)
  ) -> Bool {
    gvae_conv2d_direct(
      x, weight, y, Int32(batch), Int32(g.0), Int32(g.1), Int32(g.2), Int32(outputs), Int32(g.3), Int32(g.4),
      Int32(g.5), Int32(g.6), Int32(g.7), Int32(g.8), Int32(g.9), Int32(g.10)) != 0
  }

  /// Direct transposed convolution (no bias) of [B, Cin, H, W] with weights [Cin, O, kh, kw]
  /// into `y` [B, O, Ho, Wo], written in full (`g` is the geometry of the convolution it is
  /// the adjoint of: (O, Ho, Wo, kh, kw, sh, sw, ph, pw, H, W)); false without writing where
  /// it does not apply (see `gvae_conv2d_transpose_direct`).
  public static func conv2DTransposeDirect(
    _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int,
    inputs: Int, _ g: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)
  ) -> Bool {
    gvae_conv2d_transpose_direct(
      x, weight, y, Int32(batch), Int32(inputs), Int32(g.9), Int32(g.10), Int32(g.0), Int32(g.3), Int32(g.4),
      Int32(g.5), Int32(g.6), Int32(g.7), Int32(g.8), Int32(g.1), Int32(g.2)) != 0
  }

  /// Whether `conv2DDirect` applies to this geometry (C, kh, kw, stride) and output count.
  public static func conv2DDirectApplies(channels: Int, kernel: (Int, Int), stride: (Int, Int), outputs: Int) -> Bool {
    gvae_conv2d_direct_supported(
      Int32(channels), Int32(kernel.0), Int32(kernel.1), Int32(stride.0), Int32(stride.1), Int32(outputs)) != 0
  }

  /// Applies `kernel` to a whole tensor, returning a new one of the same shape.
  public static func apply(
    _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void, _ x: Tensor
  ) -> Tensor {
    Tensor(shape: x.shape) { out in
      x.storage.withUnsafeBufferPointer { px in
        if let src = px.baseAddress, let dst = out.baseAddress { kernel(src, dst, px.count) }
      }
    }
  }
}

@usableFromInline func _expm1(_ x: Float) -> Float { expm1f(x) }
@usableFromInline func _log1p(_ x: Float) -> Float { log1pf(x) }
@usableFromInline func _exp(_ x: Float) -> Float { expf(x) }
@usableFromInline func _logf(_ x: Float) -> Float { logf(x) }
