import Engine

/// Result of comparing backward gradients with central differences.
public struct GradientCheckResult: CustomStringConvertible {
  public var worstError: Float
  public var worstInput: Int
  public var worstIndex: Int
  public var analytic: Float
  public var numeric: Float

  public var description: String {
    "worst relative error \(worstError) at input \(worstInput) index \(worstIndex): "
      + "analytic \(analytic), numeric \(numeric)"
  }
}

/// Checks `d sum(w ⊙ f(inputs)) / d inputs` against central differences, where `w` is a
/// fixed random weighting (so every output element and its sign matter).
///
/// Error per element: `|a − n| / max(1, |a|, |n|)`; Float32 with `step` near 1e-3 keeps it
/// under about 1e-2 for correct gradients, while a wrong sign or a missing term exceeds it.
public func checkGradients(
  _ inputs: [Tensor], step: Float = 1e-3, seed: UInt64 = 7,
  _ f: ([Var]) -> Var
) -> GradientCheckResult {
  // Fixed weighting of the output elements.
  let probe = Tape(recording: false)
  let outShape = f(inputs.map { probe.constant($0) }).shape
  var rng = SeededRandom(seed: seed)
  let weights = Tensor(randomUniform: outShape, low: 0.5, high: 1.5, rng: &rng)

  func objective(_ xs: [Tensor]) -> Double {
    let tape = Tape(recording: false)
    let y = f(xs.map { tape.constant($0) }).value
    var s = 0.0
    for i in 0..<y.count { s += Double(y.storage[i]) * Double(weights.storage[i]) }
    return s
  }

  let tape = Tape()
  let vars = inputs.map { tape.variable($0) }
  let y = f(vars)
  tape.backward(y, seed: weights)
  var result = GradientCheckResult(worstError: 0, worstInput: -1, worstIndex: -1, analytic: 0, numeric: 0)
  for (n, input) in inputs.enumerated() {
    let analytic = tape.gradient(of: vars[n]) ?? Tensor(zeros: input.shape)
    for i in 0..<input.count {
      var plus = inputs, minus = inputs
      plus[n].storage[i] += step
      minus[n].storage[i] -= step
      let numeric = Float((objective(plus) - objective(minus)) / Double(2 * step))
      let a = analytic.storage[i]
      let err = abs(a - numeric) / max(1, abs(a), abs(numeric))
      if err > result.worstError || result.worstIndex < 0 {
        result = GradientCheckResult(worstError: err, worstInput: n, worstIndex: i, analytic: a, numeric: numeric)
      }
    }
  }
  return result
}
