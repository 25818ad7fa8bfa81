// Sparse GP regression (FITC) with inducing points trained by minibatch Adam.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The fully independent training conditional approximation (Snelson & Ghahramani 2006),
/// as the Grammar VAE paper's sparse GP:
///
/// ```
/// y ~ N(μ, Q + Λ),  Q = K_fu K_uu⁻¹ K_uf,  Λ = diag(K_ff − Q) + σ²I
/// ```
///
/// with `m` inducing inputs `Z`. Training maximises the FITC log marginal likelihood of each
/// minibatch (the paper's scheme: a stochastic estimate, exact when the batch is the whole
/// data) with Adam over Z, log ℓ, log s², log σ² and μ. Prediction uses every training
/// point: the posterior's statistics are sums over points, accumulated in one pass.
public struct SparseGP: Sendable, Codable {
  public var hyperparameters: GPHyperparameters
  public var inducing: Matrix  // [m, D]

  public init(hyperparameters: GPHyperparameters, inducing: Matrix) {
    self.hyperparameters = hyperparameters
    self.inducing = inducing
  }

  /// K_uu jitter, relative to s²; part of the model (its gradient is exact).
  static let relativeJitter = 1e-6

  func kuu() -> Matrix {
    var k = hyperparameters.kernel.matrix(inducing, inducing)
    let m = inducing.rows
    let j = Self.relativeJitter * hyperparameters.kernel.signalVariance
    for i in 0..<m { k.storage[i * m + i] += j }
    return k
  }

  /// FITC log marginal likelihood of `(x, y)` and its gradients with respect to the
  /// hyperparameters (`GPHyperparameters.vector` order) and the inducing inputs.
  ///
  /// With `Kuu = LLᵀ`, `V = L⁻¹K_uf`, `A = I + VΛ⁻¹Vᵀ = L_A L_Aᵀ`, `c = L_A⁻¹VΛ⁻¹r`:
  /// ```
  /// log p = −½(Σ rᵢ²/Λᵢ − ‖c‖²) − ½(Σ log Λᵢ + log|A|) − n/2 log 2π
  /// ```
  /// Gradients from `W = ½(ααᵀ − (Q+Λ)⁻¹)`, `α = (Q+Λ)⁻¹r`, `B = Kuu⁻¹K_uf`, `w = diag W`:
  /// ∂/∂K_fu = 2(W − diag w)Bᵀ, ∂/∂K_uu = −B(W − diag w)Bᵀ, ∂/∂(K_ff)ᵢᵢ = wᵢ, ∂/∂σ² = Σ wᵢ.
  public func logLikelihood(inputs x: Matrix, targets y: [Double]) throws(GPError) -> (
    value: Double, gradient: [Double], inducing: Matrix
  ) {
    let h = hyperparameters
    let kernel = h.kernel
    let n = x.rows
    let m = inducing.rows
    let s2 = kernel.signalVariance
    let noise = exp(h.logNoiseVariance)
    let kuuJ = kuu()
    let chol: Cholesky
    do { chol = try Cholesky(kuuJ) } catch { throw .linearAlgebra(error) }
    let kuf = kernel.matrix(inducing, x)  // [m, n]
    let v = chol.solveLower(kuf)  // [m, n]
    var lambda = [Double](repeating: 0, count: n)
    for j in 0..<m { for i in 0..<n { lambda[i] += v.storage[j * n + i] * v.storage[j * n + i] } }
    for i in 0..<n { lambda[i] = max(s2 - lambda[i], 0) + noise }
    let r = y.map { $0 - h.mean }
    // A = I + (VΛ^-½)(VΛ^-½)ᵀ.
    var vs = v
    let invSqrt = lambda.map { 1 / $0.squareRoot() }
    for j in 0..<m { for i in 0..<n { vs.storage[j * n + i] *= invSqrt[i] } }
    var a = matmul(vs, vs, transposeB: true)
    for j in 0..<m { a.storage[j * m + j] += 1 }
    let cholA: Cholesky
    do { cholA = try Cholesky(a) } catch { throw .linearAlgebra(error) }
    let beta = matvec(v, (0..<n).map { r[$0] / lambda[$0] })
    let c = cholA.solveLower(beta)
    var value = -0.5 * Double(n) * log(2 * Double.pi) - 0.5 * cholA.logDeterminant + 0.5 * dot(c, c)
    for i in 0..<n { value -= 0.5 * (r[i] * r[i] / lambda[i] + log(lambda[i])) }

    // α = (Q+Λ)⁻¹r = Λ⁻¹(r − Vᵀ A⁻¹ β); diag (Q+Λ)⁻¹ = 1/Λ − diag(Vᵀ A⁻¹ V)/Λ².
    let aInvBeta = cholA.solveLower(c, transpose: true)
    let vtab = matvec(v, aInvBeta, transpose: true)
    let alpha = (0..<n).map { (r[$0] - vtab[$0]) / lambda[$0] }
    let p = matmul(cholA.inverse(), v)  // A⁻¹V [m, n]
    var quad = [Double](repeating: 0, count: n)
    for j in 0..<m { for i in 0..<n { quad[i] += v.storage[j * n + i] * p.storage[j * n + i] } }
    var w = [Double](repeating: 0, count: n)
    for i in 0..<n {
      let kinv = 1 / lambda[i] - quad[i] / (lambda[i] * lambda[i])
      w[i] = 0.5 * (alpha[i] * alpha[i] - kinv)
    }
    // E = (W − diag w)Bᵀ with B = L⁻ᵀV and (Q+Λ)⁻¹Bᵀ = Λ⁻¹(L⁻ᵀA⁻¹V)ᵀ, so Eᵀ = L⁻ᵀY with
    // Y = ½(Vα)αᵀ − ½(A⁻¹V)Λ⁻¹ − V diag w (one triangular solve instead of two).
    let vAlpha = matvec(v, alpha)
    var yy = Matrix(rows: m, columns: n)
    for j in 0..<m {
      let va = 0.5 * vAlpha[j]
      for i in 0..<n {
        let t = j * n + i
        yy.storage[t] = va * alpha[i] - 0.5 * p.storage[t] / lambda[i] - w[i] * v.storage[t]
      }
    }
    var gUF = chol.solveLower(yy, transpose: true)  // Eᵀ [m, n]
    for t in 0..<gUF.storage.count { gUF.storage[t] *= 2 }
    // ∂/∂K_uu = −BE = −L⁻ᵀ(VYᵀ)L⁻¹.
    let vyt = matmul(v, yy, transposeB: true)  // [m, m]
    var guu = chol.solveLower(
      chol.solveLower(vyt.transposed(), transpose: true).transposed(), transpose: true)
    for t in 0..<guu.storage.count { guu.storage[t] = -guu.storage[t] }
    // Symmetric in exact arithmetic; symmetrise so the two-sided Z gradient below holds.
    for i in 0..<m {
      for j in (i + 1)..<max(i + 1, m) {
        let s = 0.5 * (guu[i, j] + guu[j, i])
        guu[i, j] = s
        guu[j, i] = s
      }
    }
    // Λ's K_ff part counts only where it was not clamped.
    var sumW = 0.0
    var sumWff = 0.0
    for i in 0..<n {
      sumW += w[i]
      if lambda[i] > noise { sumWff += w[i] }
    }
    let gf = kernelGradients(
      kernel: kernel, a: inducing, b: x, k: kuf, g: gUF, wantA: true, wantB: false)
    let gu = kernelGradients(
      kernel: kernel, a: inducing, b: inducing, k: kuuJ, g: guu, wantA: false, wantB: true)
    var dLog = gf.logLengthscales
    for d in dLog.indices { dLog[d] += gu.logLengthscales[d] }
    let dLogS2 = gf.logSignalVariance + gu.logSignalVariance + sumWff * s2
    var dZ = gf.a!
    // K_uu depends on Z through both arguments; G_uu is symmetric, so twice one side.
    for t in 0..<dZ.storage.count { dZ.storage[t] += 2 * gu.b!.storage[t] }
    return (value, dLog + [dLogS2, noise * sumW, alpha.reduce(0, +)], dZ)
  }

  /// Training settings; the defaults are the paper's.
  public struct TrainingOptions: Sendable {
    public var inducingPoints = 500
    public var epochs = 50
    public var batchSize = 5000
    public var learningRate = 5e-4
    public init() {}
  }

  /// Starts from inducing points at a random subset of the inputs, median-heuristic
  /// lengthscales, the targets' mean and variance and noise 10% of it; then Adam (β 0.9,
  /// 0.999) on the per-point negative log likelihood of shuffled minibatches.
  /// `progress(epoch, meanLogLikelihood)` is called after each epoch.
  public static func train(
    inputs x: Matrix, targets y: [Double], options: TrainingOptions,
    rng: inout some RandomNumberGenerator,
    progress: (Int, Double) -> Void = { _, _ in }
  ) throws(GPError) -> SparseGP {
    try checkData(x, y)
    guard options.inducingPoints > 0, options.batchSize > 0, options.epochs >= 0,
      options.learningRate > 0, options.learningRate.isFinite
    else { throw .shapeMismatch("sparse GP options must be positive") }
    let n = x.rows
    let m = min(options.inducingPoints, n)
    var order = Array(0..<n)
    order.shuffle(using: &rng)
    let kernel = ARDKernel.initial(inputs: x, targets: y, rng: &rng)
    let mean = y.reduce(0, +) / Double(n)
    var gp = SparseGP(
      hyperparameters: GPHyperparameters(
        kernel: kernel, mean: mean, logNoiseVariance: kernel.logSignalVariance + log(0.1)),
      inducing: x.selecting(rows: order[0..<m]))
    // Equal batches of at most batchSize (so no tiny last batch gets a full Adam step).
    let batches = (n + options.batchSize - 1) / options.batchSize
    var adamH = Adam(count: gp.hyperparameters.vector.count, learningRate: options.learningRate)
    var adamZ = Adam(count: gp.inducing.storage.count, learningRate: options.learningRate)
    for epoch in 0..<options.epochs {
      order.shuffle(using: &rng)
      var total = 0.0
      for k in 0..<batches {
        let rows = Array(order[(k * n / batches)..<((k + 1) * n / batches)])
        let (value, g, gz) = try gp.logLikelihood(
          inputs: x.selecting(rows: rows), targets: rows.map { y[$0] })
        let scale = -1 / Double(rows.count)
        total += value
        var hv = gp.hyperparameters.vector
        adamH.step(&hv, gradient: g.map { $0 * scale })
        gp.hyperparameters = GPHyperparameters(vector: hv)
        adamZ.step(&gp.inducing.storage, gradient: gz.storage.map { $0 * scale })
      }
      progress(epoch + 1, total / Double(n))
    }
    return gp
  }

  /// Posterior statistics from all of `(x, y)`, in blocks of `block` points.
  public func state(inputs x: Matrix, targets y: [Double], block: Int = 4096) throws(GPError)
    -> SparseGPState
  {
    try checkData(x, y)
    let chol: Cholesky
    do { chol = try Cholesky(kuu()) } catch { throw .linearAlgebra(error) }
    var s = SparseGPState(
      hyperparameters: hyperparameters, inducing: inducing, kuu: chol,
      a: Matrix.identity(inducing.rows), beta: [Double](repeating: 0, count: inducing.rows))
    var start = 0
    while start < x.rows {
      let end = min(x.rows, start + block)
      s.add(inputs: x.selecting(rows: start..<end), targets: Array(y[start..<end]))
      start = end
    }
    return s
  }
}

/// The FITC posterior's sufficient statistics: `A = I + Σᵢ vᵢvᵢᵀ/Λᵢ`, `β = Σᵢ vᵢ rᵢ/Λᵢ`,
/// `vᵢ = L⁻¹k_u(xᵢ)`. Adding points (real or fantasised) is a rank update.
public struct SparseGPState: Sendable {
  public var hyperparameters: GPHyperparameters
  public var inducing: Matrix
  var kuu: Cholesky
  var a: Matrix
  var beta: [Double]

  /// Adds observations (the kriging believer adds predicted means this way).
  public mutating func add(inputs x: Matrix, targets y: [Double]) {
    let n = x.rows
    let m = inducing.rows
    let h = hyperparameters
    let v = kuu.solveLower(h.kernel.matrix(inducing, x))  // [m, n]
    let s2 = h.kernel.signalVariance
    let noise = exp(h.logNoiseVariance)
    var vs = v
    var weighted = [Double](repeating: 0, count: n)
    for i in 0..<n {
      var q = 0.0
      for j in 0..<m { q += v.storage[j * n + i] * v.storage[j * n + i] }
      let lambda = max(s2 - q, 0) + noise
      weighted[i] = (y[i] - h.mean) / lambda
      for j in 0..<m { vs.storage[j * n + i] /= lambda.squareRoot() }
    }
    let update = matmul(vs, vs, transposeB: true)
    for t in 0..<a.storage.count { a.storage[t] += update.storage[t] }
    let b = matvec(v, weighted)
    for j in 0..<m { beta[j] += b[j] }
  }

  /// `w = L⁻ᵀA⁻¹β`, `M = L⁻ᵀ(I − A⁻¹)L⁻¹`.
  public func posterior() throws(GPError) -> GPPosterior {
    let m = inducing.rows
    let cholA: Cholesky
    do { cholA = try Cholesky(a) } catch { throw .linearAlgebra(error) }
    let weights = kuu.solveLower(cholA.solve(beta), transpose: true)
    var inner = cholA.inverse()
    for t in 0..<inner.storage.count { inner.storage[t] = -inner.storage[t] }
    for j in 0..<m { inner.storage[j * m + j] += 1 }
    // L⁻ᵀ X L⁻¹ = L⁻ᵀ (L⁻ᵀ Xᵀ)ᵀ with X symmetric.
    let left = kuu.solveLower(inner, transpose: true)
    var precision = kuu.solveLower(left.transposed(), transpose: true)
    // Symmetrise away rounding.
    for i in 0..<m {
      for j in (i + 1)..<max(i + 1, m) {
        let s = 0.5 * (precision[i, j] + precision[j, i])
        precision[i, j] = s
        precision[j, i] = s
      }
    }
    return GPPosterior(
      kernel: hyperparameters.kernel, mean: hyperparameters.mean,
      logNoiseVariance: hyperparameters.logNoiseVariance, centers: inducing, weights: weights,
      precision: precision)
  }
}

/// Adam (Kingma & Ba 2015) on a flat parameter vector, minimising.
struct Adam {
  var m: [Double]
  var v: [Double]
  var t = 0
  let learningRate: Double
  let beta1 = 0.9
  let beta2 = 0.999
  let epsilon = 1e-8

  init(count: Int, learningRate: Double) {
    m = [Double](repeating: 0, count: count)
    v = [Double](repeating: 0, count: count)
    self.learningRate = learningRate
  }

  mutating func step(_ p: inout [Double], gradient g: [Double]) {
    t += 1
    let c1 = 1 - pow(beta1, Double(t))
    let c2 = 1 - pow(beta2, Double(t))
    for i in p.indices {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i]
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
      p[i] -= learningRate * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon)
    }
  }
}
