// Small numeric helpers over raw buffers for the fused VAE network. Matrix products go
// through Engine's BLAS seam; everything else is a plain loop over unsafe pointers.
import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

typealias FPtr = UnsafeMutablePointer<Float>
typealias CFPtr = UnsafePointer<Float>

/// `C[m, n] = A·B + beta·C` (row-major), with optional transposes and leading dimensions.
@inline(__always)
func gemm(
  _ a: CFPtr, _ b: CFPtr, _ c: FPtr, m: Int, n: Int, k: Int,
  transposeA: Bool = false, transposeB: Bool = false,
  lda: Int? = nil, ldb: Int? = nil, beta: Float = 0
) {
  if m == 0 || n == 0 { return }
  if k == 0 {
    if beta == 0 { c.update(repeating: 0, count: m * n) }
    return
  }
  BLAS.sgemm(
    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
    a: a, lda: lda ?? (transposeA ? m : k), b: b, ldb: ldb ?? (transposeB ? k : n),
    beta: beta, c: c, ldc: n)
}

/// Adds `bias[n]` to every row of `x[rows, n]`.
@inline(__always)
func addBias(_ x: FPtr, _ bias: CFPtr, rows: Int, n: Int) {
  for r in 0..<rows {
    let p = x + r * n
    for j in 0..<n { p[j] += bias[j] }
  }
}

/// `out[n] += column sums of x[rows, n]`.
@inline(__always)
func addColumnSums(_ x: CFPtr, into out: FPtr, rows: Int, n: Int) {
  for r in 0..<rows {
    let p = x + r * n
    for j in 0..<n { out[j] += p[j] }
  }
}

@inline(__always)
func reluInPlace(_ x: FPtr, count: Int) {
  for i in 0..<count where x[i] < 0 { x[i] = 0 }
}

/// `dx[i] = 0` where the ReLU output `y[i]` is not positive.
@inline(__always)
func reluBackward(_ dx: FPtr, output y: CFPtr, count: Int) {
  for i in 0..<count where y[i] <= 0 { dx[i] = 0 }
}

@inline(__always)
func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// tanh through one `expf` (glibc's `tanhf` goes through the slower `expm1f`):
/// tanh x = 1 − 2 / (e^{2x} + 1); exact limits ±1 when e^{2x} overflows or underflows.
@inline(__always)
func fastTanh(_ x: Float) -> Float { 1 - 2 / (expf(2 * x) + 1) }

extension Array where Element == Float {
  /// Pointers for the duration of `body` (mutable).
  @inline(__always)
  mutating func withPtr<R>(_ body: (FPtr) throws -> R) rethrows -> R {
    try withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
  }
  @inline(__always)
  func withCPtr<R>(_ body: (CFPtr) throws -> R) rethrows -> R {
    try withUnsafeBufferPointer { try body($0.baseAddress!) }
  }
  init(zeros n: Int) { self.init(repeating: 0, count: n) }
}

extension Parameter {
  @inline(__always)
  func withValue<R>(_ body: (CFPtr) throws -> R) rethrows -> R {
    try value.storage.withUnsafeBufferPointer { try body($0.baseAddress!) }
  }
  @inline(__always)
  func withGradient<R>(_ body: (FPtr) throws -> R) rethrows -> R {
    try gradient.storage.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
  }
}

/// Standard normal draws from a SplitMix64 stream (Box–Muller, one value per pair of draws
/// so the stream position depends only on the count).
struct NormalSampler {
  static func fill<R: RandomNumberGenerator>(_ out: FPtr, count: Int, rng: inout R) {
    for i in 0..<count {
      var u1 = Float(rng.next() >> 40) * 0x1p-24
      if u1 < 1e-30 { u1 = 1e-30 }
      let u2 = Float(rng.next() >> 40) * 0x1p-24
      out[i] = (-2 * logf(u1)).squareRoot() * cosf(2 * Float.pi * u2)
    }
  }
}
