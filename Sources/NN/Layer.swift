import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A neural-network layer: holds `Parameter`s and is applied with `callAsFunction(_:tape:)`.
///
/// Parameters are listed by hand in a fixed order with hierarchical names
/// (`"encoder.conv1.weight"`), which is the order optimisers keep state in and the names
/// checkpoints save under. Layers are structs holding `Parameter` references, so a copy of
/// a layer shares its weights.
public protocol Layer {
  /// Trainable parameters in a fixed order.
  var parameters: [Parameter] { get }
  /// Non-trainable state that checkpoints save (batch-norm running statistics).
  var buffers: [Parameter] { get }
}

extension Layer {
  public var buffers: [Parameter] { [] }
}

/// Joins a name prefix and a leaf name with a dot (`"encoder" + "weight"`).
@inlinable
public func qualifiedName(_ prefix: String, _ leaf: String) -> String {
  prefix.isEmpty ? leaf : prefix + "." + leaf
}

/// An elementwise activation fused into the preceding layer's custom op. Its derivative is
/// computed from the output, so the layer saves only its output.
public enum Activation: Sendable, Equatable {
  case identity
  case relu
  case tanh
  case sigmoid
  case leakyRelu(slope: Float)
  /// log(1 + eˣ), computed as max(x, 0) + log1p(e^−|x|); its derivative σ(x) is 1 − e^−y.
  case softplus

  /// Applies the activation in place.
  @usableFromInline
  func apply(_ p: UnsafeMutablePointer<Float>, count n: Int) {
    switch self {
    case .identity: break
    case .relu: for i in 0..<n { p[i] = Swift.max(p[i], 0) }
    case .tanh: Kernels.tanh(p, p, count: n)
    case .sigmoid: Kernels.sigmoid(p, p, count: n)
    case .leakyRelu(let s): for i in 0..<n { p[i] = p[i] > 0 ? p[i] : s * p[i] }
    case .softplus: for i in 0..<n { p[i] = Swift.max(p[i], 0) + log1pf(expf(-Swift.abs(p[i]))) }
    }
  }

  /// Multiplies `g` in place by the derivative, given the activation's output `y`.
  @usableFromInline
  func backward(
    output y: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>, count n: Int
  ) {
    switch self {
    case .identity: break
    case .relu: Activation.scaleWhereNotPositive(y, g, count: n, by: 0)
    case .tanh: for i in 0..<n { g[i] *= 1 - y[i] * y[i] }
    case .sigmoid: for i in 0..<n { g[i] *= y[i] * (1 - y[i]) }
    case .leakyRelu(let s): Activation.scaleWhereNotPositive(y, g, count: n, by: s)
    case .softplus: for i in 0..<n { g[i] *= -expm1f(-y[i]) }
    }
  }

  /// The gradient times the derivative as a tensor; the identity returns `gradient` itself
  /// (no copy of a buffer the tape still shares).
  func backward(output: Tensor, gradient: Tensor) -> Tensor {
    if self == .identity { return gradient }
    var g = gradient
    let n = g.count
    g.withMutablePointer { pg in output.withPointer { backward(output: $0, gradient: pg, count: n) } }
    return g
  }

  /// `g[i] *= s` (s = 0: `g[i] = 0`) where `y[i] <= 0`, 16 lanes at a time: a branch per
  /// element does not vectorise.
  @usableFromInline
  static func scaleWhereNotPositive(
    _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count n: Int, by s: Float
  ) {
    typealias V = SIMD16<Float>
    var i = 0
    while i + V.scalarCount <= n {
      let yv = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
      var gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
      gv.replace(with: s == 0 ? V(repeating: 0) : gv * s, where: yv .<= 0)
      UnsafeMutableRawPointer(g + i).storeBytes(of: gv, as: V.self)
      i += V.scalarCount
    }
    for j in i..<n where y[j] <= 0 { g[j] = s == 0 ? 0 : g[j] * s }
  }
}

@inlinable
func stableSigmoid(_ x: Float) -> Float {
  if x >= 0 { return 1 / (1 + expf(-x)) }
  let e = expf(x)
  return e / (1 + e)
}

@inline(__always)
func gemm(
  _ transposeA: Bool, _ transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
  _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
  beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
  if m == 0 || n == 0 { return }
  if k == 0 {
    if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
    return
  }
  BLAS.sgemm(
    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
    a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// Adds the column sums of `cols` columns of `g` (rows `ld` apart, default `cols`) into
/// `out` ([cols]).
@inline(__always)
func addColumnSums(
  _ g: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil,
  into out: UnsafeMutablePointer<Float>
) {
  let ld = ld ?? cols
  for r in 0..<rows {
    let row = g + r * ld
    for c in 0..<cols { out[c] += row[c] }
  }
}

/// The bias gradient of a features-last layer: the column sums of `dz` ([rows, features]).
func featureBiasGradient(_ dz: Tensor, rows: Int, features: Int) -> Tensor {
  var db = Tensor(zeros: [features])
  db.withMutablePointer { pdb in
    dz.withPointer { addColumnSums($0, rows: rows, cols: features, into: pdb) }
  }
  return db
}

/// Whether a layer's weight or bias gets a gradient on their tape (not when frozen or
/// constant), so its backward can skip the weight-gradient GEMM.
func parametersNeedGradient(_ weight: Var, _ bias: Var?) -> Bool {
  weight.tape.needsGradient(weight) || (bias.map { $0.tape.needsGradient($0) } ?? false)
}

/// The bias gradient of a channels-first layer: `dz` ([batch, channels, plane]) summed over
/// batch and plane, one plane at a time in sixteen Float lanes.
func channelBiasGradient(_ dz: Tensor, batch: Int, channels: Int, plane: Int) -> Tensor {
  var db = [Float](repeating: 0, count: channels)
  dz.withPointer { pdz in
    db.withUnsafeMutableBufferPointer { pdb in
      for b in 0..<batch {
        for o in 0..<channels { pdb[o] += fastSum(pdz + (b * channels + o) * plane, plane) }
      }
    }
  }
  return Tensor(shape: [channels], storage: db)
}

extension Tensor {
  /// Read access to the storage without bounds checks.
  @inlinable
  func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
    try storage.withUnsafeBufferPointer { try body($0.baseAddress!) }
  }

  /// Write access to the storage without bounds checks.
  @inlinable
  mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows
    -> R
  {
    try storage.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
  }
}
