import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Per-row Bernoulli log-likelihood from logits, summed over the last axis:
///
/// ```
/// ll_row = Σ_i  t_i·x_i − max(x_i, 0) − log(1 + exp(−|x_i|))     (= Σ log p(t_i | σ(x_i)))
/// ```
/// `logits` [..., D], `targets` in [0, 1] with the same shape, or [R, D] with R dividing the
/// number of logit rows: row r then uses target row r mod R (k samples of n images laid out
/// [k·n, D] against the n images, without copying them k times). The result has shape
/// `logits.shape.dropLast()`. Unlike `binaryCrossEntropy` it keeps one value per row, which
/// importance weighting (IWAE) needs. Exp and log run in the vectorised kernels; the log of
/// `1 + e` for `e < 6e-8` rounds to 0, an absolute error below 1e-7 per element.
public func bernoulliLogLikelihood(logits: Var, targets: Tensor) -> Var {
  let shape = logits.shape
  let D = shape.last ?? 0
  let rows = D == 0 ? 0 : logits.value.count / D
  let targetRows = D == 0 ? 0 : targets.count / D
  precondition(
    !shape.isEmpty && targets.shape.last == D
      && (targets.shape == shape || (targets.rank == 2 && targetRows > 0 && rows % targetRows == 0)),
    "Bernoulli log-likelihood targets \(targets.shape) vs logits \(shape)")
  var out = Tensor(zeros: Array(shape.dropLast()))
  var work = [Float](repeating: 0, count: D)
  logits.value.withPointer { px in
    targets.withPointer { pt in
      out.withMutablePointer { po in
        work.withUnsafeMutableBufferPointer { wb in
          let w = wb.baseAddress!
          for r in 0..<rows {
            let x = px + r * D
            let t = pt + (r % targetRows) * D
            for i in 0..<D { w[i] = -Swift.abs(x[i]) }
            Kernels.exp(w, w, count: D)
            for i in 0..<D { w[i] += 1 }
            Kernels.log(w, w, count: D)
            for i in 0..<D { w[i] = t[i] * x[i] - Swift.max(x[i], 0) - w[i] }
            po[r] = vectorSum(w, D)
          }
        }
      }
    }
  }
  let tape = logits.tape
  guard tape.isRecording else { return tape.constant(out) }
  return tape.record(out, inputs: [logits], backward: BernoulliLogLikelihoodBackward(targets: targets))
}

/// Σ p[0..<n] with eight-lane partial sums (a plain Float loop cannot be vectorised).
@inline(__always)
func vectorSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc = SIMD8<Float>()
  let raw = UnsafeRawPointer(p)
  for j in 0..<(n / 8) { acc += raw.loadUnaligned(fromByteOffset: 32 * j, as: SIMD8<Float>.self) }
  var i = n / 8 * 8
  var s = acc.sum()
  while i < n {
    s += p[i]
    i += 1
  }
  return s
}

final class BernoulliLogLikelihoodBackward: CustomBackward {
  let targets: Tensor
  init(targets: Tensor) { self.targets = targets }

  // d ll_row / d x_i = t_i − σ(x_i).
  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    var d = inputs[0]
    let D = d.shape.last!
    let rows = D == 0 ? 0 : d.count / D
    let targetRows = D == 0 ? 1 : targets.count / D
    d.withMutablePointer { pd in
      Kernels.sigmoid(pd, pd, count: rows * D)
      targets.withPointer { pt in
        outputGradient.withPointer { pg in
          for r in 0..<rows {
            let g = pg[r]
            let p = pd + r * D
            let t = pt + (r % targetRows) * D
            for i in 0..<D { p[i] = g * (t[i] - p[i]) }
          }
        }
      }
    }
    return [d]
  }
}

/// Per-row log-density of a diagonal Gaussian, summed over the last axis:
///
/// ```
/// log N(x; μ, exp(logσ²)) = −½ Σ_i (log 2π + logσ²_i + (x_i − μ_i)² / exp(logσ²_i))
/// ```
/// `x`, `mean` and `logVariance` broadcast against each other (for example [K, B, D] samples
/// against [1, B, D] parameters); the result drops the last axis. Gradients flow to all three.
public func diagonalGaussianLogDensity(_ x: Var, mean: Var, logVariance: Var) -> Var {
  let d = x - mean
  let quadratic = square(d) * exp(-logVariance)
  let D = Float(x.shape.last ?? 0)
  return (sum(quadratic + logVariance, axes: [x.shape.count - 1]) + D * log2Pi) * -0.5
}

/// Per-row log-density of the standard normal, summed over the last axis.
public func standardNormalLogDensity(_ x: Var) -> Var {
  let D = Float(x.shape.last ?? 0)
  return (sum(square(x), axes: [x.shape.count - 1]) + D * log2Pi) * -0.5
}

let log2Pi = Float(log(2 * Double.pi))
