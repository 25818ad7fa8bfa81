// The ARD squared-exponential kernel and its derivatives.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Automatic-relevance-determination squared-exponential covariance:
///
/// ```
/// k(x, z) = s² · exp(−½ Σ_d (x_d − z_d)² / ℓ_d²)
/// ```
///
/// Parameters live in log space (`logLengthscales` = log ℓ, `logSignalVariance` = log s²) so
/// unconstrained optimisers keep them positive.
public struct ARDKernel: Sendable, Equatable, Codable {
  public var logLengthscales: [Double]
  public var logSignalVariance: Double

  public init(logLengthscales: [Double], logSignalVariance: Double) {
    self.logLengthscales = logLengthscales
    self.logSignalVariance = logSignalVariance
  }

  public var dimension: Int { logLengthscales.count }
  public var signalVariance: Double { exp(logSignalVariance) }

  /// Lengthscales from the data: every ℓ_d = sqrt(median squared distance / 2) over random
  /// pairs (the median heuristic, so exp(−½ r²/ℓ²) is about e⁻¹ for a typical pair), signal
  /// variance the variance of `y`.
  public static func initial(
    inputs x: Matrix, targets y: [Double], rng: inout some RandomNumberGenerator, pairs: Int = 2000
  ) -> ARDKernel {
    let n = x.rows
    var squared: [Double] = []
    if n >= 2 {
      for _ in 0..<pairs {
        let i = Int.random(in: 0..<n, using: &rng)
        var j = Int.random(in: 0..<(n - 1), using: &rng)
        if j >= i { j += 1 }
        var s = 0.0
        for d in 0..<x.columns {
          let t = x[i, d] - x[j, d]
          s += t * t
        }
        squared.append(s)
      }
    }
    squared.sort()
    let median = squared.isEmpty ? 1 : squared[squared.count / 2]
    let ell = median > 0 && median.isFinite ? (median / 2).squareRoot() : 1
    let mean = y.isEmpty ? 0 : y.reduce(0, +) / Double(y.count)
    let variance =
      y.isEmpty ? 1 : y.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(y.count)
    return ARDKernel(
      logLengthscales: [Double](repeating: log(ell), count: x.columns),
      logSignalVariance: log(variance > 1e-12 ? variance : 1))
  }

  /// Inputs divided by the lengthscales, so the kernel is s²·exp(−½‖a − b‖²).
  func scaled(_ x: Matrix) -> Matrix {
    precondition(
      x.columns == dimension, "inputs of \(x.columns) columns for a \(dimension)-d kernel")
    var out = x
    let inv = logLengthscales.map { exp(-$0) }
    for i in 0..<x.rows { for d in 0..<x.columns { out.storage[i * x.columns + d] *= inv[d] } }
    return out
  }

  /// `K[i, j] = k(aᵢ, bⱼ)` [a.rows, b.rows], from ‖a‖² + ‖b‖² − 2 a·b with one GEMM.
  public func matrix(_ a: Matrix, _ b: Matrix) -> Matrix {
    let sa = scaled(a)
    let sb = scaled(b)
    var k = matmul(sa, sb, transposeB: true)
    let na = rowSquaredNorms(sa)
    let nb = rowSquaredNorms(sb)
    let s2 = signalVariance
    let m = b.rows
    k.storage.withUnsafeMutableBufferPointer { p in
      for i in 0..<a.rows {
        for j in 0..<m {
          // Rounding can make the distance slightly negative for (near) equal points.
          let r2 = max(0, na[i] + nb[j] - 2 * p[i * m + j])
          p[i * m + j] = s2 * exp(-0.5 * r2)
        }
      }
    }
    return k
  }

  /// The kernel between one point and each row of `b`.
  public func vector(_ x: [Double], _ b: Matrix) -> [Double] {
    matrix(Matrix(rows: 1, columns: x.count, storage: x), b).storage
  }

  /// The same matrix by the direct sum over dimensions (the test reference).
  public func directMatrix(_ a: Matrix, _ b: Matrix) -> Matrix {
    var k = Matrix(rows: a.rows, columns: b.rows)
    let inv2 = logLengthscales.map { exp(-2 * $0) }
    for i in 0..<a.rows {
      for j in 0..<b.rows {
        var r2 = 0.0
        for d in 0..<dimension {
          let t = a[i, d] - b[j, d]
          r2 += t * t * inv2[d]
        }
        k[i, j] = signalVariance * exp(-0.5 * r2)
      }
    }
    return k
  }
}

func rowSquaredNorms(_ a: Matrix) -> [Double] {
  (0..<a.rows).map { i in
    var s = 0.0
    for d in 0..<a.columns {
      let t = a.storage[i * a.columns + d]
      s += t * t
    }
    return s
  }
}

/// Gradients of a scalar through `K = k(A, B)`: given `G = ∂f/∂K`, returns ∂f/∂ log ℓ,
/// ∂f/∂ log s², and ∂f/∂A, ∂f/∂B when asked.
///
/// With `P = G ⊙ K`: ∂f/∂log s² = Σ P; ∂f/∂log ℓ_d = Σ_ij P_ij (a_id − b_jd)² / ℓ_d²;
/// ∂f/∂a_id = Σ_j P_ij (b_jd − a_id) / ℓ_d²; ∂f/∂b_jd = Σ_i P_ij (a_id − b_jd) / ℓ_d².
func kernelGradients(
  kernel: ARDKernel, a: Matrix, b: Matrix, k: Matrix, g: Matrix, wantA: Bool = false,
  wantB: Bool
) -> (logLengthscales: [Double], logSignalVariance: Double, a: Matrix?, b: Matrix?) {
  let D = kernel.dimension
  var p = g
  for t in 0..<p.storage.count { p.storage[t] *= k.storage[t] }
  var total = 0.0
  var rowSum = [Double](repeating: 0, count: a.rows)
  var colSum = [Double](repeating: 0, count: b.rows)
  for i in 0..<a.rows {
    for j in 0..<b.rows {
      let v = p.storage[i * b.rows + j]
      rowSum[i] += v
      colSum[j] += v
    }
    total += rowSum[i]
  }
  let pTa = matmul(p, a, transposeA: true)  // [b.rows, D]
  let pb = wantA ? matmul(p, b) : nil  // [a.rows, D]
  let inv2 = kernel.logLengthscales.map { exp(-2 * $0) }
  var dLog = [Double](repeating: 0, count: D)
  for d in 0..<D {
    var s = 0.0
    for i in 0..<a.rows { s += rowSum[i] * a[i, d] * a[i, d] }
    for j in 0..<b.rows { s += colSum[j] * b[j, d] * b[j, d] - 2 * pTa[j, d] * b[j, d] }
    dLog[d] = s * inv2[d]
  }
  var dA: Matrix? = nil
  if let pb {
    var m = Matrix(rows: a.rows, columns: D)
    for i in 0..<a.rows {
      for d in 0..<D { m[i, d] = (pb[i, d] - rowSum[i] * a[i, d]) * inv2[d] }
    }
    dA = m
  }
  var dB: Matrix? = nil
  if wantB {
    var m = Matrix(rows: b.rows, columns: D)
    for j in 0..<b.rows {
      for d in 0..<D { m[j, d] = (pTa[j, d] - colSum[j] * b[j, d]) * inv2[d] }
    }
    dB = m
  }
  return (dLog, total, dA, dB)
}
