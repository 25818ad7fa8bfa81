import Engine

/// A lookup table: row `i` of `weight` [count, size] for each index, PyTorch's `nn.Embedding`.
///
/// Parameter: `"<name>.weight"` [count, size], initialised N(0, 1) as PyTorch does.
public struct Embedding: Layer {
  public let weight: Parameter

  public init(count: Int, size: Int, name: String, rng: inout SeededRandom) {
    weight = Parameter(
      qualifiedName(name, "weight"), Tensor(randomNormal: [count, size], rng: &rng))
  }

  public var parameters: [Parameter] { [weight] }

  /// Rows for `indices` laid out as `shape` (its element count is `indices.count`):
  /// the result is `shape + [size]`.
  public func callAsFunction(_ indices: [Int], shape: [Int], tape: Tape) -> Var {
    precondition(shape.reduce(1, *) == indices.count, "embedding shape \(shape) for \(indices.count) indices")
    let rows = gather(tape.parameter(weight), indices: indices)
    return rows.reshaped(shape + [weight.value.shape[1]])
  }
}

/// `x` [B, F] repeated over a new axis 1 of `steps`: [B, steps, F]; the backward sums over
/// the steps. (What `gru(repeating:)` avoids materialising when the repeat is its only input.)
public func repeatSteps(_ x: Var, steps: Int) -> Var {
  let s = x.shape
  precondition(s.count == 2 && steps >= 1, "repeatSteps wants [B, F] and steps ≥ 1, got \(s), \(steps)")
  let (B, F) = (s[0], s[1])
  let y = Tensor(shape: [B, steps, F]) { out in
    x.value.storage.withUnsafeBufferPointer { px in
      for b in 0..<B {
        for t in 0..<steps {
          (out.baseAddress! + (b * steps + t) * F).update(from: px.baseAddress! + b * F, count: F)
        }
      }
    }
  }
  let tape = x.tape
  guard tape.needsGradient(x) else { return tape.constant(y) }
  return tape.record(y, inputs: [x], backward: RepeatStepsBackward(B: B, T: steps, F: F))
}

final class RepeatStepsBackward: CustomBackward {
  let B, T, F: Int
  init(B: Int, T: Int, F: Int) {
    self.B = B
    self.T = T
    self.F = F
  }

  func backward(outputGradient g: Tensor, inputs: [Tensor]) -> [Tensor?] {
    var dx = Tensor(zeros: [B, F])
    dx.withMutablePointer { pdx in
      g.withPointer { pg in
        for b in 0..<B {
          for t in 0..<T {
            let src = pg + (b * T + t) * F
            for j in 0..<F { pdx[b * F + j] += src[j] }
          }
        }
      }
    }
    return [dx]
  }
}
