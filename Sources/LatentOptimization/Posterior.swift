// The predictive distribution shared by the exact and the sparse GP.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A GP posterior in the form both GPs reduce to:
///
/// ```
/// mean(x)     = μ + k(x, C) · w
/// variance(x) = s² − k(x, C) · M · k(C, x)      (of the latent f, without noise)
/// ```
///
/// For the exact GP the centres `C` are the training inputs, `w = K⁻¹(y − μ)` and `M = K⁻¹`;
/// for the sparse GP they are the inducing points, `w = Kuu⁻¹ Σ`-weighted targets and
/// `M = Kuu⁻¹ − Σ` (see `SparseGP`). Predicting costs O(m) for the mean and O(m²) for
/// the variance per point.
public struct GPPosterior: Sendable, Codable {
  public var kernel: ARDKernel
  public var mean: Double
  public var logNoiseVariance: Double
  public var centers: Matrix  // [m, D]
  public var weights: [Double]  // [m]
  public var precision: Matrix  // [m, m], symmetric

  public var dimension: Int { kernel.dimension }
  public var noiseVariance: Double { exp(logNoiseVariance) }

  /// Latent means and variances at the rows of `x`; variances are floored at 1e-12·s² so
  /// rounding never makes them negative.
  public func predict(_ x: Matrix) -> (mean: [Double], variance: [Double]) {
    let k = kernel.matrix(x, centers)  // [n, m]
    let kw = matvec(k, weights)
    let km = matmul(k, precision)  // [n, m]
    let s2 = kernel.signalVariance
    let m = centers.rows
    var variance = [Double](repeating: 0, count: x.rows)
    for i in 0..<x.rows {
      var q = 0.0
      for j in 0..<m { q += km.storage[i * m + j] * k.storage[i * m + j] }
      variance[i] = max(s2 - q, 1e-12 * s2)
    }
    return (kw.map { $0 + mean }, variance)
  }

  /// Mean, variance and their gradients with respect to the input at one point.
  public func predictWithGradient(_ x: [Double]) -> (
    mean: Double, variance: Double, dMean: [Double], dVariance: [Double]
  ) {
    let D = dimension
    let m = centers.rows
    let k = kernel.vector(x, centers)
    let mk = matvec(precision, k)
    let s2 = kernel.signalVariance
    let raw = s2 - dot(k, mk)
    let floor = 1e-12 * s2
    let inv2 = kernel.logLengthscales.map { exp(-2 * $0) }
    // ∂k_j/∂x_d = −k_j (x_d − c_jd) / ℓ_d².
    var dMean = [Double](repeating: 0, count: D)
    var dVariance = [Double](repeating: 0, count: D)
    for j in 0..<m {
      let a = weights[j] * k[j]
      let b = -2 * mk[j] * k[j]
      for d in 0..<D {
        let t = -(x[d] - centers.storage[j * D + d]) * inv2[d]
        dMean[d] += a * t
        dVariance[d] += b * t
      }
    }
    if raw <= floor { dVariance = [Double](repeating: 0, count: D) }
    return (mean + dot(k, weights), max(raw, floor), dMean, dVariance)
  }
}

/// Gaussian log density of `y` under N(mean, variance).
func gaussianLogDensity(_ y: Double, mean: Double, variance: Double) -> Double {
  let r = y - mean
  return -0.5 * (log(2 * Double.pi * variance) + r * r / variance)
}

/// Test RMSE and mean test log-likelihood (noise included) of a posterior on held-out data.
public func heldOutScores(_ p: GPPosterior, inputs: Matrix, targets: [Double]) -> (
  rmse: Double, logLikelihood: Double
) {
  guard inputs.rows > 0 else { return (.nan, .nan) }
  var se = 0.0
  var ll = 0.0
  var start = 0
  while start < inputs.rows {
    let end = min(inputs.rows, start + 2048)
    let (mu, v) = p.predict(inputs.selecting(rows: start..<end))
    for (t, i) in (start..<end).enumerated() {
      se += (targets[i] - mu[t]) * (targets[i] - mu[t])
      ll += gaussianLogDensity(targets[i], mean: mu[t], variance: v[t] + p.noiseVariance)
    }
    start = end
  }
  return ((se / Double(inputs.rows)).squareRoot(), ll / Double(inputs.rows))
}
