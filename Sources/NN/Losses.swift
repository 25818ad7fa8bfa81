import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How a loss reduces its per-element (or per-row) terms to one scalar.
public enum LossReduction: Sendable, Equatable {
  /// Sum of all terms.
  case sum
  /// Sum of all terms over the number of terms (for weighted cross-entropy: over the weight
  /// sum).
  case mean
  /// Sum over every axis but the first, mean over the first (batch) axis: the VAE's
  /// per-example reconstruction loss, summed over steps.
  case batchMean
}

/// Softmax cross-entropy from logits over the last axis, with an optional mask of allowed
/// classes and per-row weights, as one custom op.
///
/// ```
/// loss_row = w_row · (log Σ_{c allowed} exp(l_c) − l_target)
/// ```
/// Masked classes (mask 0) get exactly zero probability: the softmax is renormalised over
/// the allowed classes, as in the Grammar VAE's teacher-forced decoder (Kusner et al. 2017,
/// §3). A row with no allowed class contributes 0.
///
/// - Parameters:
///   - logits: [..., C], e.g. [B, T, C].
///   - targets: class index per row, `logits.count / C` entries in row order ([B, T]).
///   - mask: 1 = allowed, same shape as `logits`; nil allows every class.
///   - weights: per-row weights, shape `logits.shape.dropLast()` ([B, T]); nil = 1.
///   - maskTable, maskRows: a mask given by reference instead of `mask`: row `r` of the
///     logits uses row `maskRows[r]` of `maskTable` [K, C]. A grammar's masks come from a
///     small table (one row per left-hand side), so no [B, T, C] mask is built.
///   - reduction: default `.batchMean` (sum over steps, mean over the batch).
public func softmaxCrossEntropy(
  logits: Var, targets: [Int], mask: Tensor? = nil, weights: Tensor? = nil,
  maskTable: Tensor? = nil, maskRows: [Int]? = nil, reduction: LossReduction = .batchMean
) -> Var {
  let shape = logits.shape
  let C = shape.last ?? 1
  let rows = logits.value.count / max(C, 1)
  precondition(
    targets.count == rows, "cross-entropy: \(targets.count) targets for \(rows) rows of \(shape)")
  if let mask {
    precondition(mask.shape == shape, "cross-entropy mask \(mask.shape) vs logits \(shape)")
  }
  if let weights {
    precondition(weights.count == rows, "cross-entropy weights \(weights.shape) vs logits \(shape)")
  }
  precondition(mask == nil || maskTable == nil, "cross-entropy: give mask or maskTable, not both")
  if let maskTable {
    precondition(
      maskTable.rank == 2 && maskTable.shape[1] == C && maskRows?.count == rows,
      "cross-entropy mask table \(maskTable.shape), \(maskRows?.count ?? 0) rows for \(shape)")
  }
  var probabilities = Tensor(zeros: shape)
  var total = 0.0
  let maskStorage = mask?.storage ?? maskTable?.storage ?? []
  let tableRows = maskTable?.shape[0] ?? 0
  logits.value.withPointer { pl in
    probabilities.withMutablePointer { pp in
      maskStorage.withUnsafeBufferPointer { maskBuf in
        let hasMask = mask != nil || maskTable != nil
        for r in 0..<rows {
          let l = pl + r * C
          let p = pp + r * C
          var maskRow = r
          if let maskRows {
            maskRow = maskRows[r]
            precondition(maskRow >= 0 && maskRow < tableRows, "mask row \(maskRow) outside 0..<\(tableRows)")
          }
          let m = hasMask ? maskBuf.baseAddress! + maskRow * C : nil
          var maxLogit = -Float.infinity
          for c in 0..<C where m == nil || m![c] != 0 { maxLogit = Swift.max(maxLogit, l[c]) }
          if maxLogit == -.infinity { continue }  // nothing allowed: no term
          var s: Float = 0
          for c in 0..<C {
            let e: Float = (m == nil || m![c] != 0) ? expf(l[c] - maxLogit) : 0
            p[c] = e
            s += e
          }
          let inv = 1 / s
          for c in 0..<C { p[c] *= inv }
          let w = weights?.storage[r] ?? 1
          let target = targets[r]
          precondition(target >= 0 && target < C, "cross-entropy target \(target) outside 0..<\(C)")
          total += Double(w * (maxLogit + logf(s) - l[target]))
        }
      }
    }
  }
  let divisor: Float
  switch reduction {
  case .sum: divisor = 1
  case .mean: divisor = weights.map { max($0.storage.reduce(0, +), 1e-12) } ?? Float(max(rows, 1))
  case .batchMean: divisor = Float(max(shape.first ?? 1, 1))
  }
  let value = Tensor(scalar: Float(total) / divisor)
  let op = CrossEntropyBackward(
    probabilities: probabilities, targets: targets, weights: weights, scale: 1 / divisor)
  return logits.tape.record(value, inputs: [logits], backward: op)
}

final class CrossEntropyBackward: CustomBackward {
  let probabilities: Tensor
  let targets: [Int]
  let weights: Tensor?
  let scale: Float

  init(probabilities: Tensor, targets: [Int], weights: Tensor?, scale: Float) {
    self.probabilities = probabilities
    self.targets = targets
    self.weights = weights
    self.scale = scale
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    var d = probabilities
    let C = d.shape.last ?? 1
    let g = outputGradient.scalar * scale
    d.withMutablePointer { pd in
      for r in 0..<targets.count {
        let k = g * (weights?.storage[r] ?? 1)
        let p = pd + r * C
        var s: Float = 0
        for c in 0..<C {
          s += p[c]
          p[c] *= k
        }
        if s > 0 { p[targets[r]] -= k }  // a row with no allowed class has no term
      }
    }
    return [d]
  }
}

/// Binary cross-entropy from logits, `max(x, 0) − x·t + log(1 + exp(−|x|))`, which is
/// stable for large |x|; `targets` in [0, 1] with the logits' shape. Default mean over all
/// elements.
public func binaryCrossEntropy(
  logits: Var, targets: Tensor, reduction: LossReduction = .mean
) -> Var {
  let shape = logits.shape
  precondition(
    targets.shape == shape, "binary cross-entropy targets \(targets.shape) vs logits \(shape)")
  let n = logits.value.count
  var total = 0.0
  logits.value.withPointer { px in
    targets.withPointer { pt in
      for i in 0..<n {
        let x = px[i]
        total += Double(Swift.max(x, 0) - x * pt[i] + log1pf(expf(-abs(x))))
      }
    }
  }
  let divisor = reductionDivisor(reduction, count: n, shape: shape)
  let op = BinaryCrossEntropyBackward(targets: targets, scale: 1 / divisor)
  return logits.tape.record(Tensor(scalar: Float(total) / divisor), inputs: [logits], backward: op)
}

func reductionDivisor(_ reduction: LossReduction, count: Int, shape: [Int]) -> Float {
  switch reduction {
  case .sum: return 1
  case .mean: return Float(max(count, 1))
  case .batchMean: return Float(max(shape.first ?? 1, 1))
  }
}

final class BinaryCrossEntropyBackward: CustomBackward {
  let targets: Tensor
  let scale: Float

  init(targets: Tensor, scale: Float) {
    self.targets = targets
    self.scale = scale
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    var d = inputs[0]
    let k = outputGradient.scalar * scale
    d.withMutablePointer { pd in
      targets.withPointer { pt in
        for i in 0..<targets.count { pd[i] = k * (stableSigmoid(pd[i]) - pt[i]) }
      }
    }
    return [d]
  }
}

/// How the Gaussian KL term is reduced over the latent dimensions (always mean over batch).
public enum KLReduction: Sendable, Equatable {
  /// The proper ELBO term: summed over latent dimensions.
  case sumOverDimensions
  /// Averaged over latent dimensions, as the paper's Keras code does.
  case meanOverDimensions
}

/// `KL(N(μ, exp(logσ²)) ‖ N(0, I))` for [B, D] `mean` and `logVariance`:
///
/// ```
/// KL_b = −½ Σ_d (1 + logσ²_d − μ_d² − exp(logσ²_d))
/// ```
/// averaged over the batch (Kingma & Welling 2014, appendix B).
public func gaussianKLDivergence(
  mean: Var, logVariance: Var, reduction: KLReduction = .sumOverDimensions
) -> Var {
  let shape = mean.shape
  precondition(
    logVariance.shape == shape && shape.count >= 1,
    "KL mean \(shape) vs log-variance \(logVariance.shape)")
  let B = shape[0]
  let D = mean.value.count / max(B, 1)
  var total = 0.0
  mean.value.withPointer { pm in
    logVariance.value.withPointer { pv in
      for i in 0..<(B * D) { total += Double(1 + pv[i] - pm[i] * pm[i] - expf(pv[i])) }
    }
  }
  let scale = 1 / Float(max(B, 1)) / (reduction == .meanOverDimensions ? Float(max(D, 1)) : 1)
  let value = Tensor(scalar: Float(-0.5 * total) * scale)
  return mean.tape.record(value, inputs: [mean, logVariance], backward: KLBackward(scale: scale))
}

final class KLBackward: CustomBackward {
  let scale: Float
  init(scale: Float) { self.scale = scale }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let k = outputGradient.scalar * scale
    var dm = inputs[0]
    var dv = inputs[1]
    for i in 0..<dm.count { dm.storage[i] *= k }  // d/dμ = μ
    for i in 0..<dv.count { dv.storage[i] = k * 0.5 * (expf(dv.storage[i]) - 1) }
    return [dm, dv]
  }
}

/// Mean squared error `mean((prediction − target)²)` (or summed, per `reduction`).
public func meanSquaredError(
  _ prediction: Var, _ target: Var, reduction: LossReduction = .mean
) -> Var {
  let shape = prediction.shape
  precondition(target.shape == shape, "MSE prediction \(shape) vs target \(target.shape)")
  var diff = prediction.value
  var total = 0.0
  let n = diff.count
  diff.withMutablePointer { pd in
    target.value.withPointer { pt in
      for i in 0..<n {
        pd[i] -= pt[i]
        total += Double(pd[i] * pd[i])
      }
    }
  }
  let divisor = reductionDivisor(reduction, count: diff.count, shape: shape)
  return prediction.tape.record(
    Tensor(scalar: Float(total) / divisor), inputs: [prediction, target],
    backward: MSEBackward(difference: diff, scale: 2 / divisor))
}

final class MSEBackward: CustomBackward {
  let difference: Tensor
  let scale: Float
  init(difference: Tensor, scale: Float) {
    self.difference = difference
    self.scale = scale
  }

  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let k = outputGradient.scalar * scale
    var d = difference
    for i in 0..<d.count { d.storage[i] *= k }
    var minus = d
    for i in 0..<minus.count { minus.storage[i] = -minus.storage[i] }
    return [d, minus]
  }
}
