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

/// What expected improvement needs from a model: predictive means and latent variances,
/// and both with input gradients at one point.
public protocol PredictiveModel {
  func predict(_ x: Matrix) -> (mean: [Double], variance: [Double])
  func predictWithGradient(_ x: [Double]) -> (
    mean: Double, variance: Double, dMean: [Double], dVariance: [Double]
  )
}

extension GPPosterior: PredictiveModel {}

/// A posterior further conditioned on pending batch points observed at their predicted
/// means (the kriging believer), through the posterior's own joint covariance
///
/// ```
/// c(x, x′) = k(x, x′) − k(x, C)·M·k(C, x′)
/// variance′(x) = variance(x) − c(x, P)(c(P, P) + σ²I)⁻¹c(P, x),  mean′ = mean
/// ```
///
/// (the means do not move: each fantasy equals its own prediction). For the exact GP this
/// is the exact GP with the points added; for FITC it is FITC's joint predictive
/// conditioned on them, which, unlike adding the points to the FITC statistics, shrinks
/// the variance at a pending point far from the inducing points, so the batch spreads out.
public struct ConditionedPosterior: PredictiveModel, Sendable {
  public let base: GPPosterior
  public private(set) var pending: Matrix  // [q, D]
  var g = Matrix(rows: 0, columns: 0)  // M·k(C, P) [m, q]
  var factor: Cholesky? = nil  // of c(P, P) + σ²I

  public init(_ base: GPPosterior) {
    self.base = base
    pending = Matrix(rows: 0, columns: base.dimension)
  }

  /// Adds a pending point.
  public mutating func add(_ x: [Double]) throws(GPError) {
    guard x.count == base.dimension else {
      throw .shapeMismatch("point of \(x.count) values for a \(base.dimension)-d GP")
    }
    pending.appendRow(x)
    g = matmul(base.precision, base.kernel.matrix(base.centers, pending))
    var c = covariance(pending)
    // Symmetric up to rounding; 1e-8·s² more on the diagonal keeps repeated pending points
    // and a fitted noise near zero factorisable.
    let q = pending.rows
    for i in 0..<q {
      for j in (i + 1)..<max(i + 1, q) {
        let s = 0.5 * (c[i, j] + c[j, i])
        c[i, j] = s
        c[j, i] = s
      }
      c[i, i] = max(c[i, i], 0) + base.noiseVariance + 1e-8 * base.kernel.signalVariance
    }
    do {
      factor = try Cholesky(c)
    } catch {
      // With a near-noiseless GP the diagonal is about 1e-8·s² while k(P,C)·M·k(C,P)
      // carries rounding of order ε·cond(K)·s² off it: believe the fantasies a little less
      // (1e-6, 1e-4, 1e-2 of s² more noise) rather than fail the batch.
      for extra in [1e-6, 1e-4, 1e-2] {
        if let f = try? Cholesky(c, initialJitter: extra * base.kernel.signalVariance) {
          factor = f
          return
        }
      }
      throw .linearAlgebra(error)
    }
  }

  /// `c(X, P)` [n, q].
  func covariance(_ x: Matrix) -> Matrix {
    var c = base.kernel.matrix(x, pending)
    let kc = matmul(base.kernel.matrix(x, base.centers), g)
    for t in 0..<c.storage.count { c.storage[t] -= kc.storage[t] }
    return c
  }

  public func predict(_ x: Matrix) -> (mean: [Double], variance: [Double]) {
    var (mu, v) = base.predict(x)
    guard let factor else { return (mu, v) }
    let s = factor.solveLower(covariance(x).transposed())  // [q, n]
    let floor = 1e-12 * base.kernel.signalVariance
    for i in 0..<x.rows {
      var q = 0.0
      for p in 0..<pending.rows { q += s.storage[p * x.rows + i] * s.storage[p * x.rows + i] }
      v[i] = max(v[i] - q, floor)
    }
    return (mu, v)
  }

  public func predictWithGradient(_ x: [Double]) -> (
    mean: Double, variance: Double, dMean: [Double], dVariance: [Double]
  ) {
    var (mu, v, dm, dv) = base.predictWithGradient(x)
    guard let factor else { return (mu, v, dm, dv) }
    let D = base.dimension
    let q = pending.rows
    let m = base.centers.rows
    let inv2 = base.kernel.logLengthscales.map { exp(-2 * $0) }
    let kc = base.kernel.vector(x, base.centers)  // [m]
    let kp = base.kernel.vector(x, pending)  // [q]
    let kg = matvec(g, kc, transpose: true)  // [q]
    let cx = (0..<q).map { kp[$0] - kg[$0] }
    let w = factor.solve(cx)
    // ∂c_p/∂x_d = −k(x,p)(x_d − p_d)/ℓ² + Σ_j k(x,c_j)(x_d − c_jd)/ℓ² · G[j,p].
    // Σ_p w_p ∂c_p = Σ_p w_p ∂k(x,p) − Σ_j ∂k(x,c_j)·(G w)_j.
    let gw = matvec(g, w)  // [m]
    var dq = [Double](repeating: 0, count: D)
    for p in 0..<q {
      let a = w[p] * kp[p]
      for d in 0..<D { dq[d] -= a * (x[d] - pending.storage[p * D + d]) * inv2[d] }
    }
    for j in 0..<m {
      let a = gw[j] * kc[j]
      for d in 0..<D { dq[d] += a * (x[d] - base.centers.storage[j * D + d]) * inv2[d] }
    }
    let reduced = v - dot(cx, w)
    let floor = 1e-12 * base.kernel.signalVariance
    if reduced <= floor { return (mu, floor, dm, [Double](repeating: 0, count: D)) }
    for d in 0..<D { dv[d] -= 2 * dq[d] }
    v = reduced
    return (mu, v, dm, dv)
  }
}
