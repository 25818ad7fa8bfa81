// Adam and reduce-on-plateau for the fused network (kept local: plain arrays, state saved in
// checkpoints by parameter name).
import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Adam (Kingma & Ba 2015) with bias correction; state in parameter order.
public struct AdamState {
  public var step: Int = 0
  public var m: [[Float]]
  public var v: [[Float]]
  public var beta1: Float = 0.9
  public var beta2: Float = 0.999
  public var epsilon: Float = 1e-7  // Keras default, as in the paper's code

  public init(parameters: [Parameter]) {
    m = parameters.map { [Float](zeros: $0.value.count) }
    v = m
  }

  /// One update of every parameter from its gradient.
  ///
  /// ```
  /// m ← β₁m + (1−β₁)g     v ← β₂v + (1−β₂)g²
  /// θ ← θ − lr · m̂ / (√v̂ + ε),   m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)
  /// ```
  public mutating func update(_ parameters: [Parameter], learningRate lr: Float) {
    step += 1
    let c1 = 1 - powf(beta1, Float(step))
    let c2 = 1 - powf(beta2, Float(step))
    let b1 = beta1
    let b2 = beta2
    let eps = epsilon
    for (i, p) in parameters.enumerated() {
      let n = p.value.count
      m[i].withPtr { mp in
        v[i].withPtr { vp in
          p.gradient.storage.withUnsafeBufferPointer { g in
            p.value.storage.withUnsafeMutableBufferPointer { w in
              for k in 0..<n {
                let gk = g[k]
                mp[k] = b1 * mp[k] + (1 - b1) * gk
                vp[k] = b2 * vp[k] + (1 - b2) * gk * gk
                w[k] -= lr * (mp[k] / c1) / ((vp[k] / c2).squareRoot() + eps)
              }
            }
          }
        }
      }
    }
  }
}

/// Multiplies the learning rate by `factor` after `patience` epochs without improvement of
/// the monitored loss, never below `minimum` (Keras `ReduceLROnPlateau`).
public struct PlateauSchedule: Codable, Sendable, Equatable {
  public var factor: Float
  public var patience: Int
  public var minimum: Float
  public var best: Double = .infinity
  public var badEpochs: Int = 0

  public init(factor: Float = 0.2, patience: Int, minimum: Float = 1e-4) {
    self.factor = factor
    self.patience = patience
    self.minimum = minimum
  }

  /// Records an epoch's loss; returns the learning rate to use next.
  public mutating func step(loss: Double, learningRate: Float) -> Float {
    if loss < best {
      best = loss
      badEpochs = 0
      return learningRate
    }
    badEpochs += 1
    if badEpochs > patience - 1 && patience >= 0 && badEpochs >= max(patience, 1) {
      badEpochs = 0
      return max(minimum, learningRate * factor)
    }
    return learningRate
  }
}

/// Global gradient norm and in-place clipping to `maxNorm` (no-op when 0).
public func clipGradients(_ parameters: [Parameter], maxNorm: Float) -> Float {
  var total: Double = 0
  for p in parameters { for g in p.gradient.storage { total += Double(g) * Double(g) } }
  let norm = Float(total.squareRoot())
  if maxNorm > 0 && norm > maxNorm {
    let s = maxNorm / norm
    for p in parameters {
      let n = p.gradient.count
      p.gradient.storage.withPtr { g in for k in 0..<n { g[k] *= s } }
    }
  }
  return norm
}
