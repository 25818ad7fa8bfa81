// Batch Bayesian optimisation: kriging-believer batches of expected-improvement maximisers.
import Engine

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
/// improvement (minimisation, below `best`) under the posterior conditioned on the earlier
/// points of the batch as if observed at their predicted means (`ConditionedPosterior`);
/// the incumbent drops to a fantasy when it is lower. Log EI keeps the search informative
/// where EI itself underflows to 0.
///
/// Under mpirun the ranks share each point's work: candidate blocks and L-BFGS restarts
/// round-robin; one process computes the same blocks and restarts, so every rank returns
/// the batch one process returns, bit for bit.
public func selectBatch(
  _ posterior: GPPosterior, count: Int, best: Double, box: Box,
  options: AcquisitionOptions = .init(), rng: inout some RandomNumberGenerator,
  cluster: Cluster = .world
) throws(GPError) -> [[Double]] {
  var model = ConditionedPosterior(posterior)
  var incumbent = best
  var batch: [[Double]] = []
  let D = box.lower.count
  // Candidates are scored in blocks of fixed size, so a block's rounding does not depend on
  // how many blocks a rank holds.
  let block = 1024
  for _ in 0..<count {
    let candidates = box.uniform(max(1, options.candidates), rng: &rng)
    let blocks = (candidates.rows + block - 1) / block
    var mine: [Double] = []
    for b in stride(from: cluster.rank, to: blocks, by: cluster.size) {
      let rows = (b * block)..<min(candidates.rows, (b + 1) * block)
      mine += logExpectedImprovement(model, at: candidates.selecting(rows: rows), best: incumbent)
    }
    let gathered = cluster.size > 1 ? cluster.allGather(bytes: mine.withUnsafeBytes { Array($0) }) : []
    var scores = [Double](repeating: 0, count: candidates.rows)
    if cluster.size == 1 {
      scores = mine
    } else {
      for r in 0..<cluster.size {
        let values = gathered[r].withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        var at = 0
        for b in stride(from: r, to: blocks, by: cluster.size) {
          for i in (b * block)..<min(candidates.rows, (b + 1) * block) {
            scores[i] = values[at]
            at += 1
          }
        }
      }
    }
    let order = scores.indices.sorted { scores[$0] > scores[$1] }
    var bestPoint = candidates.row(order[0])
    var bestValue = scores[order[0]]
    // Restart j on rank j mod size; each result is (value, point).
    let starts = Array(order.prefix(max(0, options.restarts)))
    var refined: [Double] = []
    for j in stride(from: cluster.rank, to: starts.count, by: cluster.size) {
      let (x, negative) = minimizeLBFGS(
        { x in
          let (v, g) = logExpectedImprovementWithGradient(model, at: x, best: incumbent)
          return (-v, g.map { -$0 })
        }, from: candidates.row(starts[j]), lower: box.lower, upper: box.upper,
        iterations: options.localIterations)
      refined += [-negative] + x
    }
    var results: [[Double]] = Array(repeating: [], count: starts.count)
    let parts = cluster.size > 1 ? cluster.allGather(bytes: refined.withUnsafeBytes { Array($0) }) : []
    for r in 0..<cluster.size {
      let values = cluster.size == 1 ? refined : parts[r].withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
      var at = 0
      for j in stride(from: r, to: starts.count, by: cluster.size) {
        results[j] = Array(values[at..<(at + D + 1)])
        at += D + 1
      }
    }
    for r in results where r[0] > bestValue {
      bestValue = r[0]
      bestPoint = Array(r[1...])
    }
    let mean = posterior.predict(Matrix(rows: 1, columns: bestPoint.count, storage: bestPoint))
      .mean[0]
    try model.add(bestPoint)
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

/// Fits the surrogate to `(x, y)` and returns its posterior.
public func fitPosterior(
  inputs x: Matrix, targets y: [Double], kind: SurrogateKind,
  rng: inout some RandomNumberGenerator, progress: (Int, Double) -> Void = { _, _ in }
) throws(GPError) -> GPPosterior {
  switch kind {
  case .exact:
    return try ExactGP.fit(inputs: x, targets: y, rng: &rng).posterior()
  case .sparse(let o):
    let gp = try SparseGP.train(inputs: x, targets: y, options: o, rng: &rng, progress: progress)
    return try gp.state(inputs: x, targets: y).posterior()
  }
}

/// Fits the surrogate to `(x, y)` and returns a batch for it.
public func proposeBatch(
  inputs x: Matrix, targets y: [Double], kind: SurrogateKind, count: Int, box: Box,
  options: AcquisitionOptions = .init(), rng: inout some RandomNumberGenerator
) throws(GPError) -> [[Double]] {
  try checkData(x, y)
  let p = try fitPosterior(inputs: x, targets: y, kind: kind, rng: &rng)
  return try selectBatch(p, count: count, best: y.min()!, box: box, options: options, rng: &rng)
}
