import Engine
import LatentOptimization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite struct GaussianProcessTests {
  let hyper = GPHyperparameters(
    kernel: ARDKernel(logLengthscales: [log(0.7), log(1.3)], logSignalVariance: log(1.5)),
    mean: 0.2, logNoiseVariance: log(0.1))

  @Test func kernelMatrixMatchesDirectSum() {
    var rng = SeededRandom(seed: 4)
    let a = randomMatrix(6, 2, rng: &rng)
    let b = randomMatrix(4, 2, rng: &rng)
    let k = hyper.kernel.matrix(a, b)
    #expect(maxAbsDifference(k.storage, hyper.kernel.directMatrix(a, b).storage) < 1e-12)
    #expect(abs(hyper.kernel.matrix(a, a)[2, 2] - 1.5) < 1e-12)
  }

  /// One observation: mean μ + k(x, x₀)(y₀ − μ)/(s² + σ²), variance s² − k²/(s² + σ²), and
  /// log p(y₀) = log N(y₀; μ, s² + σ²).
  @Test func singlePointPosteriorIsClosedForm() throws {
    let x0 = Matrix(rows: 1, columns: 2, storage: [0.3, -0.4])
    let y0 = 1.7
    let gp = try ExactGP(inputs: x0, targets: [y0], hyperparameters: hyper)
    let p = try gp.posterior()
    let test = Matrix(rows: 3, columns: 2, storage: [0.3, -0.4, 1, 1, -0.5, 0.2])
    let (mu, v) = p.predict(test)
    for i in 0..<3 {
      let dx = (test[i, 0] - 0.3) / 0.7
      let dy = (test[i, 1] + 0.4) / 1.3
      let k = 1.5 * exp(-0.5 * (dx * dx + dy * dy))
      #expect(abs(mu[i] - (0.2 + k * (y0 - 0.2) / 1.6)) < 1e-12)
      #expect(abs(v[i] - (1.5 - k * k / 1.6)) < 1e-12)
    }
    let (ll, _) = try ExactGP.logMarginalLikelihood(
      inputs: x0, targets: [y0], hyperparameters: hyper)
    let r = y0 - 0.2
    #expect(abs(ll - (-0.5 * log(2 * Double.pi * 1.6) - 0.5 * r * r / 1.6)) < 1e-12)
  }

  @Test func exactMarginalLikelihoodGradientMatchesFiniteDifferences() throws {
    var rng = SeededRandom(seed: 5)
    let x = randomMatrix(9, 2, rng: &rng)
    let y = (0..<9).map { sin(2 * x[$0, 0]) + 0.3 * x[$0, 1] }
    let v0 =
      hyper.kernel.logLengthscales + [
        hyper.kernel.logSignalVariance, hyper.logNoiseVariance, hyper.mean,
      ]
    func f(_ v: [Double]) -> Double {
      let h = GPHyperparameters(
        kernel: ARDKernel(logLengthscales: [v[0], v[1]], logSignalVariance: v[2]), mean: v[4],
        logNoiseVariance: v[3])
      return (try? ExactGP.logMarginalLikelihood(inputs: x, targets: y, hyperparameters: h).value)
        ?? .nan
    }
    let (_, g) = try ExactGP.logMarginalLikelihood(inputs: x, targets: y, hyperparameters: hyper)
    let (error, index) = worstGradientError(f, at: v0, analytic: g)
    #expect(error < 1e-6, "parameter \(index)")
  }

  @Test func fitRaisesTheMarginalLikelihoodAndRecoversNoise() throws {
    var rng = SeededRandom(seed: 6)
    let x = randomMatrix(60, 1, rng: &rng)
    let y = (0..<60).map { sin(3 * x[$0, 0]) + 0.1 * Double(rng.nextNormal()) }
    var fitRng = SeededRandom(seed: 7)
    let gp = try ExactGP.fit(inputs: x, targets: y, rng: &fitRng)
    let fitted = try ExactGP.logMarginalLikelihood(
      inputs: x, targets: y, hyperparameters: gp.hyperparameters
    ).value
    var initRng = SeededRandom(seed: 7)
    let k0 = ARDKernel.initial(inputs: x, targets: y, rng: &initRng)
    let start = try ExactGP.logMarginalLikelihood(
      inputs: x, targets: y,
      hyperparameters: GPHyperparameters(
        kernel: k0, mean: 0, logNoiseVariance: k0.logSignalVariance + log(0.1))
    ).value
    #expect(fitted > start + 10)
    // True noise std 0.1: the fitted one within a factor 2.
    let noiseStd = exp(0.5 * gp.hyperparameters.logNoiseVariance)
    #expect(noiseStd > 0.05 && noiseStd < 0.2, "noise std \(noiseStd)")
  }

  @Test func badDataIsAnError() {
    let x = Matrix(rows: 2, columns: 1, storage: [0, .nan])
    #expect(throws: GPError.nonFiniteInput("input row 2")) {
      try ExactGP(inputs: x, targets: [1, 2], hyperparameters: hyper)
    }
    #expect(throws: GPError.shapeMismatch("2 input rows but 1 targets")) {
      try ExactGP(
        inputs: Matrix(rows: 2, columns: 1, storage: [0, 1]), targets: [1], hyperparameters: hyper)
    }
    var rng = SeededRandom(seed: 1)
    #expect(throws: GPError.emptyData) {
      try ExactGP.fit(inputs: Matrix(rows: 0, columns: 2), targets: [], rng: &rng)
    }
  }
}

@Suite struct SparseGPTests {
  let hyper = GPHyperparameters(
    kernel: ARDKernel(logLengthscales: [log(0.8), log(1.1)], logSignalVariance: log(1.2)),
    mean: -0.1, logNoiseVariance: log(0.2))

  /// FITC against the dense formula: log N(y; μ, Q + Λ) with Q and Λ built explicitly.
  @Test func fitcMatchesDenseFormula() throws {
    var rng = SeededRandom(seed: 8)
    let x = randomMatrix(15, 2, rng: &rng)
    let y = (0..<15).map { cos(x[$0, 0]) - x[$0, 1] }
    let z = randomMatrix(4, 2, rng: &rng)
    let gp = SparseGP(hyperparameters: hyper, inducing: z)
    let value = try gp.logLikelihood(inputs: x, targets: y).value
    var kuu = hyper.kernel.matrix(z, z)
    for i in 0..<4 { kuu[i, i] += 1e-6 * 1.2 }
    let kfu = hyper.kernel.matrix(x, z)
    let q = matmul(kfu, try Cholesky(kuu).solve(kfu.transposed()))
    var c = q
    for i in 0..<15 { c[i, i] = 1.2 + 0.2 }  // Q_ii + (K_ii − Q_ii) + σ²
    let chol = try Cholesky(c)
    let r = y.map { $0 + 0.1 }
    let dense = -0.5 * dot(r, chol.solve(r)) - 0.5 * chol.logDeterminant - 7.5 * log(2 * Double.pi)
    #expect(abs(value - dense) < 1e-9, "FITC \(value) dense \(dense)")
  }

  @Test func fitcGradientsMatchFiniteDifferences() throws {
    var rng = SeededRandom(seed: 9)
    let x = randomMatrix(20, 2, rng: &rng)
    let y = (0..<20).map { sin(x[$0, 0]) * x[$0, 1] + 0.5 }
    let z = randomMatrix(5, 2, rng: &rng)
    let gp = SparseGP(hyperparameters: hyper, inducing: z)
    let (_, g, gz) = try gp.logLikelihood(inputs: x, targets: y)
    let v0 =
      hyper.kernel.logLengthscales + [
        hyper.kernel.logSignalVariance, hyper.logNoiseVariance, hyper.mean,
      ]
    func fh(_ v: [Double]) -> Double {
      let h = GPHyperparameters(
        kernel: ARDKernel(logLengthscales: [v[0], v[1]], logSignalVariance: v[2]), mean: v[4],
        logNoiseVariance: v[3])
      return
        (try? SparseGP(hyperparameters: h, inducing: z).logLikelihood(inputs: x, targets: y).value)
        ?? .nan
    }
    let (eh, ih) = worstGradientError(fh, at: v0, analytic: g)
    #expect(eh < 1e-5, "hyperparameter \(ih)")
    func fz(_ s: [Double]) -> Double {
      (try? SparseGP(hyperparameters: hyper, inducing: Matrix(rows: 5, columns: 2, storage: s))
        .logLikelihood(inputs: x, targets: y).value) ?? .nan
    }
    let (ez, iz) = worstGradientError(fz, at: z.storage, analytic: gz.storage)
    #expect(ez < 1e-5, "inducing coordinate \(iz)")
  }

  /// With the inducing points at the training inputs, FITC is the exact GP.
  @Test func inducingAtInputsGivesTheExactPosterior() throws {
    var rng = SeededRandom(seed: 10)
    let x = randomMatrix(8, 2, rng: &rng)
    let y = (0..<8).map { x[$0, 0] - 2 * x[$0, 1] }
    let exact = try ExactGP(inputs: x, targets: y, hyperparameters: hyper).posterior()
    let state = try SparseGP(hyperparameters: hyper, inducing: x).state(inputs: x, targets: y)
    let sparse = try state.posterior()
    let test = randomMatrix(5, 2, rng: &rng)
    let (m1, v1) = exact.predict(test)
    let (m2, v2) = sparse.predict(test)
    #expect(maxAbsDifference(m1, m2) < 1e-4)
    #expect(maxAbsDifference(v1, v2) < 1e-4)
  }

  /// Conditioning the exact posterior on a pending point at its predicted mean is the exact
  /// GP with that observation added.
  @Test func pendingPointsMatchTheExactGPWithTheFantasyAdded() throws {
    var rng = SeededRandom(seed: 18)
    let x = randomMatrix(8, 2, rng: &rng)
    let y = (0..<8).map { sin(x[$0, 0]) + x[$0, 1] }
    let base = try ExactGP(inputs: x, targets: y, hyperparameters: hyper).posterior()
    var conditioned = ConditionedPosterior(base)
    var grown = x
    var targets = y
    for point in [[0.4, -0.3], [1.2, 0.8]] {
      let mean = base.predict(Matrix(rows: 1, columns: 2, storage: point)).mean[0]
      try conditioned.add(point)
      grown.appendRow(point)
      targets.append(mean)
    }
    let exact = try ExactGP(inputs: grown, targets: targets, hyperparameters: hyper).posterior()
    let test = randomMatrix(6, 2, rng: &rng)
    let (m1, v1) = conditioned.predict(test)
    let (m2, v2) = exact.predict(test)
    #expect(maxAbsDifference(m1, m2) < 1e-9)
    // The pending block's 1e-8·s² diagonal allowance shifts variances by about that much.
    #expect(maxAbsDifference(v1, v2) < 1e-7)
    let at = [0.1, 0.2]
    let (_, _, dm, dv) = conditioned.predictWithGradient(at)
    let fm: ([Double]) -> Double = {
      conditioned.predict(Matrix(rows: 1, columns: 2, storage: $0)).mean[0]
    }
    let fv: ([Double]) -> Double = {
      conditioned.predict(Matrix(rows: 1, columns: 2, storage: $0)).variance[0]
    }
    #expect(worstGradientError(fm, at: at, analytic: dm).error < 1e-6)
    #expect(worstGradientError(fv, at: at, analytic: dv).error < 1e-6)
  }

  /// Far from every inducing point FITC's variance is the prior's; a pending point there
  /// must still shrink it to about the noise (else a batch repeats one point).
  @Test func pendingPointShrinksSparseVarianceFarFromInducingPoints() throws {
    var rng = SeededRandom(seed: 19)
    let x = randomMatrix(30, 2, rng: &rng, scale: 0.3)
    let y = (0..<30).map { x[$0, 0] }
    let state = try SparseGP(hyperparameters: hyper, inducing: x.selecting(rows: 0..<5))
      .state(inputs: x, targets: y)
    let p = try state.posterior()
    let far = [6.0, -6.0]
    let at = Matrix(rows: 1, columns: 2, storage: far)
    #expect(abs(p.predict(at).variance[0] - 1.2) < 1e-6)
    var c = ConditionedPosterior(p)
    try c.add(far)
    let v = c.predict(at).variance[0]
    // σ²s²/(s² + σ²) = 0.2·1.2/1.4.
    #expect(abs(v - 0.2 * 1.2 / 1.4) < 1e-6, "variance \(v)")
  }

  @Test func posteriorGradientMatchesFiniteDifferences() throws {
    var rng = SeededRandom(seed: 11)
    let x = randomMatrix(10, 2, rng: &rng)
    let y = (0..<10).map { x[$0, 0] * x[$0, 1] }
    let p = try ExactGP(inputs: x, targets: y, hyperparameters: hyper).posterior()
    let at = [0.3, -0.2]
    let (_, _, dm, dv) = p.predictWithGradient(at)
    let fm: ([Double]) -> Double = { p.predict(Matrix(rows: 1, columns: 2, storage: $0)).mean[0] }
    let fv: ([Double]) -> Double = {
      p.predict(Matrix(rows: 1, columns: 2, storage: $0)).variance[0]
    }
    #expect(worstGradientError(fm, at: at, analytic: dm).error < 1e-6)
    #expect(worstGradientError(fv, at: at, analytic: dv).error < 1e-6)
  }

  /// Minibatch Adam: the held-out fit of a smooth 2-D function beats the constant predictor
  /// by far, and the training likelihood rises.
  @Test func minibatchTrainingFitsASmoothFunction() throws {
    var rng = SeededRandom(seed: 12)
    let n = 600
    let x = randomMatrix(n, 2, rng: &rng)
    let f: (Double, Double) -> Double = { a, b in sin(2 * a) + 0.5 * b * b }
    let y = (0..<n).map { f(x[$0, 0], x[$0, 1]) + 0.05 * Double(rng.nextNormal()) }
    var o = SparseGP.TrainingOptions()
    o.inducingPoints = 30
    o.epochs = 40
    o.batchSize = 100
    o.learningRate = 0.02
    var curve: [Double] = []
    let gp = try SparseGP.train(inputs: x, targets: y, options: o, rng: &rng) { curve.append($1) }
    #expect(curve.count == 40)
    #expect(curve.last! > curve.first! + 0.3, "\(curve.first!) → \(curve.last!)")
    let test = randomMatrix(200, 2, rng: &rng)
    let ty = (0..<200).map { f(test[$0, 0], test[$0, 1]) }
    let p = try gp.state(inputs: x, targets: y).posterior()
    let (rmse, ll) = heldOutScores(p, inputs: test, targets: ty)
    let mean = ty.reduce(0, +) / 200
    let sd = (ty.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 200).squareRoot()
    #expect(rmse < 0.25 * sd, "rmse \(rmse) vs sd \(sd)")
    #expect(ll > 0, "test log-likelihood \(ll)")
  }
}
