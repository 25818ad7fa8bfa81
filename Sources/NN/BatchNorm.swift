import Engine

/// Batch normalisation statistics of one call: per-feature mean and biased variance.
public struct BatchStatistics: Sendable {
  public var mean: [Float]
  public var variance: [Float]

  public init(mean: [Float], variance: [Float]) {
    self.mean = mean
    self.variance = variance
  }
}

/// Sums per-feature statistics over the replicas of a data-parallel job, in place, on every
/// replica (an all-reduce); batch norm then normalises by the whole global batch.
public typealias SumAcrossReplicas = (inout [Double]) -> Void

/// Batch normalisation with the features on `axis` (−1: the last axis, for [B, …, F];
/// 1: channels of [B, C, H, W]), as one custom op.
///
/// ```
/// y = scale · (x − μ) / sqrt(σ² + ε) + offset
/// ```
/// With `statistics == nil` μ and σ² (biased) are the batch's, over every axis but `axis`,
/// and the gradient flows through them; otherwise the given running statistics are used as
/// constants. Returns the batch statistics (or the given ones) beside the result.
///
/// With `sumAcross` (synchronised batch norm) the batch is the union of every replica's
/// shard: the sums behind μ and σ² in the forward pass, and behind mean(dy) and mean(dy·x̂)
/// in the backward pass, are summed over replicas; the scale and offset gradients stay
/// this shard's (the data-parallel gradient sum adds them up).
public func batchNorm(
  _ x: Var, scale: Var, offset: Var, axis: Int = -1, epsilon: Float = 1e-5,
  statistics: BatchStatistics? = nil, sumAcross: SumAcrossReplicas? = nil
) -> (Var, BatchStatistics) {
  let shape = x.shape
  let a = axis < 0 ? shape.count + axis : axis
  precondition(a >= 0 && a < shape.count, "batchNorm axis \(axis) for shape \(shape)")
  let C = shape[a]
  let outer = shape[..<a].reduce(1, *)
  let inner = shape[(a + 1)...].reduce(1, *)
  precondition(
    scale.shape == [C] && offset.shape == [C],
    "batchNorm scale \(scale.shape), offset \(offset.shape) vs \(C) features")
  var n = Float(outer * inner)
  var mean = [Float](repeating: 0, count: C)
  var variance = [Float](repeating: 0, count: C)
  let xv = x.value
  if let statistics {
    mean = statistics.mean
    variance = statistics.variance
  } else {
    // Two passes, block sums in Float lanes added up in Double: exact enough for large
    // batches without a Welford loop.
    var s = [Double](repeating: 0, count: C)
    var s2 = [Double](repeating: 0, count: C)
    xv.withPointer { px in
      s.withUnsafeMutableBufferPointer { ps in
        for o in 0..<outer {
          let row = px + o * C * inner
          if inner == 1 {
            for c in 0..<C { ps[c] += Double(row[c]) }
          } else {
            for c in 0..<C { ps[c] += Double(fastSum(row + c * inner, inner)) }
          }
        }
      }
      if let sumAcross {
        var t = s + [Double(n)]
        sumAcross(&t)
        s = Array(t[..<C])
        n = Float(t[C])
      }
      for c in 0..<C { mean[c] = Float(s[c] / Double(n)) }
      mean.withUnsafeBufferPointer { pm in
        s2.withUnsafeMutableBufferPointer { ps2 in
          for o in 0..<outer {
            let row = px + o * C * inner
            if inner == 1 {
              for c in 0..<C {
                let d = row[c] - pm[c]
                ps2[c] += Double(d * d)
              }
            } else {
              for c in 0..<C { ps2[c] += Double(laneSquaredDeviation(row + c * inner, inner, pm[c])) }
            }
          }
        }
      }
    }
    sumAcross?(&s2)
    for c in 0..<C { variance[c] = Float(s2[c] / Double(n)) }
  }
  let invStd = variance.map { 1 / ($0 + epsilon).squareRoot() }
  let g = scale.value.storage
  let b = offset.value.storage
  // x̂ and y are written in full: no zero fill.
  var y = Tensor(zeros: [0])
  let xhat = Tensor(shape: shape) { phb in
    y = Tensor(shape: shape) { pyb in
      let (ph, py) = (phb.baseAddress!, pyb.baseAddress!)
      xv.withPointer { px in
        mean.withUnsafeBufferPointer { pm in
          invStd.withUnsafeBufferPointer { ps in
            g.withUnsafeBufferPointer { pg in
              b.withUnsafeBufferPointer { pb in
                for o in 0..<outer {
                  let base = o * C * inner
                  if inner == 1 {
                    for c in 0..<C {
                      let h = (px[base + c] - pm[c]) * ps[c]
                      ph[base + c] = h
                      py[base + c] = pg[c] * h + pb[c]
                    }
                    continue
                  }
                  for c in 0..<C {
                    let at = base + c * inner
                    let (m, sc, gc, bc) = (pm[c], ps[c], pg[c], pb[c])
                    for i in 0..<inner {
                      let h = (px[at + i] - m) * sc
                      ph[at + i] = h
                      py[at + i] = gc * h + bc
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  let stats = BatchStatistics(mean: mean, variance: variance)
  let tape = x.tape
  guard tape.isRecording else { return (tape.constant(y), stats) }
  let op = BatchNormBackward(
    xhat: xhat, invStd: invStd, outer: outer, C: C, inner: inner,
    throughStatistics: statistics == nil, count: n, sumAcross: statistics == nil ? sumAcross : nil)
  return (tape.record(y, inputs: [x, scale, offset], backward: op), stats)
}

final class BatchNormBackward: CustomBackward {
  let xhat: Tensor
  let invStd: [Float]
  let outer, C, inner: Int
  let throughStatistics: Bool
  /// Rows behind the statistics (every replica's with `sumAcross`).
  let count: Float
  let sumAcross: SumAcrossReplicas?

  init(
    xhat: Tensor, invStd: [Float], outer: Int, C: Int, inner: Int, throughStatistics: Bool,
    count: Float, sumAcross: SumAcrossReplicas?
  ) {
    self.xhat = xhat
    self.invStd = invStd
    self.outer = outer
    self.C = C
    self.inner = inner
    self.throughStatistics = throughStatistics
    self.count = count
    self.sumAcross = sumAcross
  }

  func backward(outputGradient dy: Tensor, inputs: [Tensor]) -> [Tensor?] {
    let gamma = inputs[1].storage
    var dGamma = [Float](repeating: 0, count: C)
    var dBeta = [Float](repeating: 0, count: C)
    let (outer, C, inner) = (self.outer, self.C, self.inner)
    dy.withPointer { pg in
      xhat.withPointer { ph in
        dGamma.withUnsafeMutableBufferPointer { pdg in
          dBeta.withUnsafeMutableBufferPointer { pdb in
            for o in 0..<outer {
              let base = o * C * inner
              if inner == 1 {
                for c in 0..<C {
                  pdb[c] += pg[base + c]
                  pdg[c] += pg[base + c] * ph[base + c]
                }
                continue
              }
              for c in 0..<C {
                let (sg, sgh) = laneSumAndDot(pg + base + c * inner, ph + base + c * inner, inner)
                pdb[c] += sg
                pdg[c] += sgh
              }
            }
          }
        }
      }
    }
    let n = count
    // The means of dy and dy·x̂ over the whole batch.
    var sumG = dBeta
    var sumGH = dGamma
    if let sumAcross {
      var t = dBeta.map(Double.init) + dGamma.map(Double.init)
      sumAcross(&t)
      sumG = t[..<C].map { Float($0) }
      sumGH = t[C...].map { Float($0) }
    }
    // dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), or γ/σ · dy through fixed statistics.
    let k = (0..<C).map { gamma[$0] * invStd[$0] }
    let mg = throughStatistics ? sumG.map { $0 / n } : [Float](repeating: 0, count: C)
    let mgh = throughStatistics ? sumGH.map { $0 / n } : [Float](repeating: 0, count: C)
    let dx = Tensor(shape: dy.shape) { pdxb in
      let pdx = pdxb.baseAddress!
      dy.withPointer { pg in
        xhat.withPointer { ph in
          k.withUnsafeBufferPointer { pk in
            mg.withUnsafeBufferPointer { pmg in
              mgh.withUnsafeBufferPointer { pmgh in
                for o in 0..<outer {
                  let base = o * C * inner
                  if inner == 1 {
                    for c in 0..<C {
                      pdx[base + c] = pk[c] * (pg[base + c] - pmg[c] - ph[base + c] * pmgh[c])
                    }
                    continue
                  }
                  for c in 0..<C {
                    let at = base + c * inner
                    let (kc, a, bc) = (pk[c], pmg[c], pmgh[c])
                    for i in 0..<inner { pdx[at + i] = kc * (pg[at + i] - a - ph[at + i] * bc) }
                  }
                }
              }
            }
          }
        }
      }
    }
    return [dx, Tensor(shape: [C], storage: dGamma), Tensor(shape: [C], storage: dBeta)]
  }
}

/// Batch normalisation layer with learned scale and offset and running statistics.
///
/// Training mode normalises with the batch's statistics and updates the running ones:
/// `running = (1 − momentum) · running + momentum · batch`, with the unbiased batch
/// variance (PyTorch's convention: momentum 0.1, ε 1e-5; Keras' momentum 0.99 is our 0.01).
/// Inference mode uses the running statistics.
///
/// Parameters: `"<name>.weight"` (scale, ones) and `"<name>.bias"` (offset, zeros);
/// buffers `"<name>.running_mean"` and `"<name>.running_var"` (PyTorch's names).
public struct BatchNorm: Layer {
  public let scale: Parameter
  public let offset: Parameter
  public let runningMean: Parameter
  public let runningVariance: Parameter
  public let axis: Int
  public let momentum: Float
  public let epsilon: Float

  /// - Parameter axis: the feature axis: −1 for [B, …, F], 1 for [B, C, H, W].
  public init(
    featureCount: Int, axis: Int = -1, momentum: Float = 0.1, epsilon: Float = 1e-5,
    name: String
  ) {
    scale = Parameter(qualifiedName(name, "weight"), Tensor(repeating: 1, shape: [featureCount]))
    offset = Parameter(qualifiedName(name, "bias"), Tensor(zeros: [featureCount]))
    runningMean = Parameter(qualifiedName(name, "running_mean"), Tensor(zeros: [featureCount]))
    runningVariance = Parameter(
      qualifiedName(name, "running_var"), Tensor(repeating: 1, shape: [featureCount]))
    self.axis = axis
    self.momentum = momentum
    self.epsilon = epsilon
  }

  public var parameters: [Parameter] { [scale, offset] }
  public var buffers: [Parameter] { [runningMean, runningVariance] }

  /// `sumAcross`: synchronised over data-parallel replicas (training mode only).
  public func callAsFunction(
    _ x: Var, tape: Tape, training: Bool, sumAcross: SumAcrossReplicas? = nil
  ) -> Var {
    if !training {
      let stats = BatchStatistics(
        mean: runningMean.value.storage, variance: runningVariance.value.storage)
      return batchNorm(
        x, scale: tape.parameter(scale), offset: tape.parameter(offset), axis: axis,
        epsilon: epsilon, statistics: stats
      ).0
    }
    let (y, stats) = batchNorm(
      x, scale: tape.parameter(scale), offset: tape.parameter(offset), axis: axis,
      epsilon: epsilon, sumAcross: sumAcross)
    let a = axis < 0 ? x.shape.count + axis : axis
    var rows = [Double(x.value.count / x.shape[a])]
    sumAcross?(&rows)
    let n = Float(rows[0])
    let unbias = n > 1 ? n / (n - 1) : 1
    for c in 0..<stats.mean.count {
      runningMean.value.storage[c] =
        (1 - momentum) * runningMean.value.storage[c] + momentum * stats.mean[c]
      runningVariance.value.storage[c] =
        (1 - momentum) * runningVariance.value.storage[c] + momentum * stats.variance[c] * unbias
    }
    return y
  }
}
