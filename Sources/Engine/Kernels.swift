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
