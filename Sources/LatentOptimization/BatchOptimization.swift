// Batch Bayesian optimisation: kriging-believer batches of expected-improvement maximisers.

/// A surrogate that can condition on fantasised observations.
public protocol FantasySurrogate {
  func posterior() throws(GPError) -> GPPosterior
  /// Adds `(x, y)` as if observed.
  mutating func add(_ x: [Double], value y: Double) throws(GPError)
}

extension ExactGP: FantasySurrogate {
  public mutating func add(_ x: [Double], value y: Double) throws(GPError) {
    guard x.count == inputs.columns else { throw .shapeMismatch("point of \(x.count) values") }
    inputs.appendRow(x)
    targets.append(y)
  }
}

extension SparseGPState: FantasySurrogate {
  public mutating func add(_ x: [Double], value y: Double) throws(GPError) {
    guard x.count == inducing.columns else { throw .shapeMismatch("point of \(x.count) values") }
    add(inputs: Matrix(rows: 1, columns: x.count, storage: x), targets: [y])
  }
}

/// A box `[lower, upper]` in latent space.
public struct Box: Sendable, Equatable {
  public var lower: [Double]
  public var upper: [Double]

  public init(lower: [Double], upper: [Double]) {
    precondition(lower.count == upper.count, "box bounds of \(lower.count) and \(upper.count)")
    self.lower = lower
    self.upper = upper
  }

  /// The bounding box of the rows of `x`.
  public init(boundingRowsOf x: Matrix) {
    var lo = [Double](repeating: .infinity, count: x.columns)
    var hi = [Double](repeating: -.infinity, count: x.columns)
    for i in 0..<x.rows {
      for d in 0..<x.columns {
        lo[d] = min(lo[d], x[i, d])
        hi[d] = max(hi[d], x[i, d])
      }
    }
    self.init(lower: lo, upper: hi)
  }

  public func uniform(_ count: Int, rng: inout some RandomNumberGenerator) -> Matrix {
    var m = Matrix(rows: count, columns: lower.count)
    for i in 0..<count {
      for d in 0..<lower.count {
        m[i, d] = lower[d] + (upper[d] - lower[d]) * Double.random(in: 0..<1, using: &rng)
      }
    }
    return m
  }
}

/// How each batch point is chosen.
public struct AcquisitionOptions: Sendable {
  /// Uniform candidates in the box scored by log EI (the paper: a grid of 10,000).
  public var candidates = 10_000
  /// Best candidates refined by projected L-BFGS on log EI.
  public var restarts = 5
  public var localIterations = 50
  public init() {}
}

/// Picks `count` points greedily by the kriging believer rule: each maximises expected
/// improvement (minimisation, below `best`) under the posterior given the real data and the
/// earlier points of the batch, each fantasised as observed at its predicted mean (which
/// also lowers the incumbent when below it). Log EI keeps the search informative where EI
/// itself underflows to 0.
public func selectBatch<S: FantasySurrogate>(
  _ surrogate: S, count: Int, best: Double, box: Box, options: AcquisitionOptions = .init(),
  rng: inout some RandomNumberGenerator
) throws(GPError) -> [[Double]] {
  var model = surrogate
  var incumbent = best
  var batch: [[Double]] = []
  for _ in 0..<count {
    let p = try model.posterior()
    let candidates = box.uniform(max(1, options.candidates), rng: &rng)
    let scores = logExpectedImprovement(p, at: candidates, best: incumbent)
    let order = scores.indices.sorted { scores[$0] > scores[$1] }
    var bestPoint = candidates.row(order[0])
    var bestValue = scores[order[0]]
    for i in order.prefix(max(0, options.restarts)) {
      let (x, negative) = minimizeLBFGS(
        { x in
          let (v, g) = logExpectedImprovementWithGradient(p, at: x, best: incumbent)
          return (-v, g.map { -$0 })
        }, from: candidates.row(i), lower: box.lower, upper: box.upper,
        iterations: options.localIterations)
      if -negative > bestValue {
        bestValue = -negative
        bestPoint = x
      }
    }
    let mean = p.predict(Matrix(rows: 1, columns: bestPoint.count, storage: bestPoint)).mean[0]
    try model.add(bestPoint, value: mean)
    incumbent = min(incumbent, mean)
    batch.append(bestPoint)
  }
  return batch
}

/// Which GP models the data in each iteration.
public enum SurrogateKind: Sendable {
  case exact
  case sparse(SparseGP.TrainingOptions)
}

/// Fits the surrogate to `(x, y)` and returns a batch for it.
public func proposeBatch(
  inputs x: Matrix, targets y: [Double], kind: SurrogateKind, count: Int, box: Box,
  options: AcquisitionOptions = .init(), rng: inout some RandomNumberGenerator
) throws(GPError) -> [[Double]] {
  try checkData(x, y)
  let best = y.min()!
  switch kind {
  case .exact:
    let gp = try ExactGP.fit(inputs: x, targets: y, rng: &rng)
    return try selectBatch(gp, count: count, best: best, box: box, options: options, rng: &rng)
  case .sparse(let o):
    let gp = try SparseGP.train(inputs: x, targets: y, options: o, rng: &rng)
    let state = try gp.state(inputs: x, targets: y)
    return try selectBatch(state, count: count, best: best, box: box, options: options, rng: &rng)
  }
}
