// Exact GP regression with hyperparameters fitted by maximising the marginal likelihood.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Errors from fitting or using a Gaussian process on outside data.
public enum GPError: Error, Equatable, CustomStringConvertible {
  case emptyData
  case shapeMismatch(String)
  case nonFiniteInput(String)
  case linearAlgebra(LinearAlgebraError)

  public var description: String {
    switch self {
    case .emptyData: return "no training points"
    case .shapeMismatch(let s): return s
    case .nonFiniteInput(let s): return "non-finite value in \(s)"
    case .linearAlgebra(let e): return e.description
    }
  }
}

func checkData(_ x: Matrix, _ y: [Double]) throws(GPError) {
  guard x.rows > 0 else { throw .emptyData }
  guard x.rows == y.count else {
    throw .shapeMismatch("\(x.rows) input rows but \(y.count) targets")
  }
  guard x.columns > 0 else { throw .shapeMismatch("inputs have no columns") }
  if let i = x.storage.firstIndex(where: { !$0.isFinite }) {
    throw .nonFiniteInput("input row \(i / x.columns + 1)")
  }
  if let i = y.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteInput("target \(i + 1)") }
}

/// GP hyperparameters: kernel, constant mean and Gaussian noise variance (log).
public struct GPHyperparameters: Sendable, Equatable, Codable {
  public var kernel: ARDKernel
  public var mean: Double
  public var logNoiseVariance: Double

  public init(kernel: ARDKernel, mean: Double, logNoiseVariance: Double) {
    self.kernel = kernel
    self.mean = mean
    self.logNoiseVariance = logNoiseVariance
  }

  /// Flattened as [log ℓ_1 … log ℓ_D, log s², log σ², μ].
  var vector: [Double] {
    kernel.logLengthscales + [kernel.logSignalVariance, logNoiseVariance, mean]
  }

  init(vector v: [Double]) {
    let D = v.count - 3
    kernel = ARDKernel(logLengthscales: Array(v[0..<D]), logSignalVariance: v[D])
    logNoiseVariance = v[D + 1]
    mean = v[D + 2]
  }
}

/// Exact GP regression: `y = μ + f(x) + ε`, `f ~ GP(0, k)`, `ε ~ N(0, σ²)`. O(n³) per fit;
/// for a few thousand points (use `SparseGP` beyond).
public struct ExactGP: Sendable {
  public var inputs: Matrix  // [n, D]
  public var targets: [Double]  // [n]
  public var hyperparameters: GPHyperparameters

  public init(inputs: Matrix, targets: [Double], hyperparameters: GPHyperparameters)
    throws(GPError)
  {
    try checkData(inputs, targets)
    guard hyperparameters.kernel.dimension == inputs.columns else {
      throw .shapeMismatch(
        "kernel of \(hyperparameters.kernel.dimension) dimensions for \(inputs.columns) columns")
    }
    self.inputs = inputs
    self.targets = targets
    self.hyperparameters = hyperparameters
  }

  /// Log marginal likelihood and its gradient (in `GPHyperparameters.vector` order):
  ///
  /// ```
  /// log p(y) = −½ rᵀK⁻¹r − ½ log|K| − n/2 log 2π,   K = K_ff + σ²I,  r = y − μ
  /// ∂/∂K = W = ½(ααᵀ − K⁻¹),  α = K⁻¹r
  /// ```
  public static func logMarginalLikelihood(
    inputs x: Matrix, targets y: [Double], hyperparameters h: GPHyperparameters
  ) throws(GPError) -> (value: Double, gradient: [Double]) {
    let n = x.rows
    let kff = h.kernel.matrix(x, x)
    var k = kff
    let noise = exp(h.logNoiseVariance)
    for i in 0..<n { k.storage[i * n + i] += noise }
    let chol: Cholesky
    do { chol = try Cholesky(k) } catch { throw .linearAlgebra(error) }
    let r = y.map { $0 - h.mean }
    let alpha = chol.solve(r)
    let value =
      -0.5 * dot(r, alpha) - 0.5 * chol.logDeterminant - 0.5 * Double(n) * log(2 * Double.pi)
    var w = chol.inverse()
    for i in 0..<n {
      for j in 0..<n { w.storage[i * n + j] = 0.5 * (alpha[i] * alpha[j] - w.storage[i * n + j]) }
    }
    let kg = kernelGradients(kernel: h.kernel, a: x, b: x, k: kff, g: w, wantB: false)
    var trace = 0.0
    for i in 0..<n { trace += w.storage[i * n + i] }
    let gradient = kg.logLengthscales + [kg.logSignalVariance, noise * trace, alpha.reduce(0, +)]
    return (value, gradient)
  }

  /// Fits the hyperparameters by L-BFGS on the negative log marginal likelihood from the
  /// median-heuristic start (noise 10% of the target variance). The noise variance is kept
  /// above 1e-6 of the target variance so K stays well conditioned.
  public static func fit(
    inputs x: Matrix, targets y: [Double], rng: inout some RandomNumberGenerator,
    iterations: Int = 200
  ) throws(GPError) -> ExactGP {
    try checkData(x, y)
    let kernel = ARDKernel.initial(inputs: x, targets: y, rng: &rng)
    let mean = y.reduce(0, +) / Double(y.count)
    let start = GPHyperparameters(
      kernel: kernel, mean: mean, logNoiseVariance: kernel.logSignalVariance + log(0.1))
    let D = x.columns
    var lower = [Double](repeating: -Double.infinity, count: D + 3)
    var upper = [Double](repeating: Double.infinity, count: D + 3)
    lower[D + 1] = kernel.logSignalVariance + log(1e-6)
    // Lengthscales and variances within e^±12 of the start: beyond that K is degenerate.
    for i in 0...D {
      lower[i] = start.vector[i] - 12
      upper[i] = start.vector[i] + 12
    }
    upper[D + 1] = start.vector[D + 1] + 12
    let (best, _) = minimizeLBFGS(
      { v in
        guard
          let (value, gradient) = try? logMarginalLikelihood(
            inputs: x, targets: y, hyperparameters: GPHyperparameters(vector: v))
        else { return (.infinity, v.map { _ in 0 }) }
        return (-value, gradient.map { -$0 })
      }, from: start.vector, lower: lower, upper: upper, iterations: iterations)
    return try ExactGP(inputs: x, targets: y, hyperparameters: GPHyperparameters(vector: best))
  }

  /// The posterior with `M = K⁻¹` and `w = K⁻¹(y − μ)`.
  public func posterior() throws(GPError) -> GPPosterior {
    let n = inputs.rows
    var k = hyperparameters.kernel.matrix(inputs, inputs)
    let noise = exp(hyperparameters.logNoiseVariance)
    for i in 0..<n { k.storage[i * n + i] += noise }
    let chol: Cholesky
    do { chol = try Cholesky(k) } catch { throw .linearAlgebra(error) }
    let r = targets.map { $0 - hyperparameters.mean }
    return GPPosterior(
      kernel: hyperparameters.kernel, mean: hyperparameters.mean,
      logNoiseVariance: hyperparameters.logNoiseVariance, centers: inputs,
      weights: chol.solve(r), precision: chol.inverse())
  }
}
