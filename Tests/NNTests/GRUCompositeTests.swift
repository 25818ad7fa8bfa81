import Engine
import NN
import TestSupport
import Testing

/// The GRU written with Engine's primitive ops (slice, matmul, sigmoid, tanh, stack): the
/// fused op must match it in value and in gradient.
func compositeGRU(_ x: Var, _ wih: Var, _ whh: Var, _ bih: Var, _ bhh: Var) -> Var {
  let (B, T) = (x.shape[0], x.shape[1])
  let H = whh.shape[1]
  var h = x.tape.constant(Tensor(zeros: [B, H]))
  var outputs: [Var] = []
  for t in 0..<T {
    let xt = slice(x, axis: 1, range: t..<(t + 1)).reshaped([B, x.shape[2]])
    let gi = matmul(xt, wih, transposeB: true) + bih
    let gh = matmul(h, whh, transposeB: true) + bhh
    func gate(_ v: Var, _ k: Int) -> Var { slice(v, axis: 1, range: (k * H)..<((k + 1) * H)) }
    let r = sigmoid(gate(gi, 0) + gate(gh, 0))
    let z = sigmoid(gate(gi, 1) + gate(gh, 1))
    let n = tanh(gate(gi, 2) + r * gate(gh, 2))
    h = (1 - z) * n + z * h
    outputs.append(h)
  }
  return stack(outputs, axis: 1)
}

/// `f`'s value and the gradient of every input, on a fresh tape, backpropagating `seed`.
func valueAndGradients(_ inputs: [Tensor], seed: Tensor, _ f: ([Var]) -> Var) -> (
  Tensor, [Tensor]
) {
  let tape = Tape()
  let vars = inputs.map { tape.variable($0) }
  let y = f(vars)
  tape.backward(y, seed: seed)
  return (y.value, vars.map { tape.gradient(of: $0)! })
}

/// Values of the same shape within `valueTolerance`; gradients of the same shapes within
/// `gradientTolerance` relative to `max(1, |expected|)`.
func expectAgree(
  _ got: (Tensor, [Tensor]), _ expected: (Tensor, [Tensor]), valueTolerance: Float = 1e-5,
  gradientTolerance: Float, sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(got.0.shape == expected.0.shape, sourceLocation: sourceLocation)
  #expect(
    zip(got.0.storage, expected.0.storage).allSatisfy { abs($0 - $1) < valueTolerance },
    sourceLocation: sourceLocation)
  #expect(got.1.count == expected.1.count, sourceLocation: sourceLocation)
  for (a, b) in zip(got.1, expected.1) {
    #expect(a.shape == b.shape, sourceLocation: sourceLocation)
    let worst = zip(a.storage, b.storage).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    #expect(
      worst < gradientTolerance, "gradient \(a.shape): worst \(worst)",
      sourceLocation: sourceLocation)
  }
}

@Suite struct GRUCompositeTests {
  @Test func fusedGRUMatchesCompositeInValueAndGradient() {
    let (B, T, I, H) = (3, 4, 2, 5)
    let inputs = [
      randn([B, T, I], seed: 1), randn([3 * H, I], seed: 2, std: 0.5),
      randn([3 * H, H], seed: 3, std: 0.5),
      randn([3 * H], seed: 4), randn([3 * H], seed: 5),
    ]
    var rng = SeededRandom(seed: 6)
    let seed = Tensor(randomNormal: [B, T, H], rng: &rng)
    let fused = valueAndGradients(inputs, seed: seed) { v in
      gru(v[0], weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4])
    }
    let composite = valueAndGradients(inputs, seed: seed) { v in
      compositeGRU(v[0], v[1], v[2], v[3], v[4])
    }
    expectAgree(fused, composite, gradientTolerance: 1e-4)
  }
}

@Suite struct GRUFastPathTests {
  /// `gru(repeating:steps:)` equals `gru` on the explicitly repeated input, in value and in
  /// every gradient (including the initial state's).
  @Test func repeatedInputMatchesExplicitRepeat() {
    let (B, T, I, H) = (3, 6, 4, 5)
    let inputs = [
      randn([B, I], seed: 11), randn([3 * H, I], seed: 12, std: 0.5),
      randn([3 * H, H], seed: 13, std: 0.5), randn([3 * H], seed: 14), randn([3 * H], seed: 15),
      randn([B, H], seed: 16),
    ]
    var rng = SeededRandom(seed: 17)
    let seed = Tensor(randomNormal: [B, T, H], rng: &rng)
    let repeating = valueAndGradients(inputs, seed: seed) { v in
      gru(
        repeating: v[0], steps: T, weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4],
        initialState: v[5])
    }
    let explicit = valueAndGradients(inputs, seed: seed) { v in
      let repeated = v[0].reshaped([B, 1, I]) + v[0].tape.constant(Tensor(zeros: [1, T, 1]))
      return gru(
        repeated, weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4], initialState: v[5])
    }
    #expect(repeating.0.shape == [B, T, H])
    expectAgree(repeating, explicit, gradientTolerance: 1e-4)
  }

  /// The input bias (a per-row constant part of the input, projected once) equals the
  /// explicit concatenation [repeat(c), x] through one weight, in value and in every
  /// gradient, across several chunks (B·T > 4,096 rows) and with an initial state; the layer
  /// API (`constantProjection`) agrees with the layer on the concatenated input, two layers
  /// deep; and central differences check the op itself.
  @Test func constantInputPartMatchesConcatenation() {
    for (B, T) in [(3, 6), (70, 64)] {
      let (Ic, I, H) = (4, 3, 5)
      let inputs = [
        randn([B, Ic], seed: 41), randn([B, T, I], seed: 42), randn([3 * H, Ic + I], seed: 43, std: 0.5),
        randn([3 * H, H], seed: 44, std: 0.5), randn([3 * H], seed: 45), randn([3 * H], seed: 46),
        randn([B, H], seed: 47),
      ]
      var rng = SeededRandom(seed: 48)
      let seed = Tensor(randomNormal: [B, T, H], rng: &rng)
      let hoisted = valueAndGradients(inputs, seed: seed) { v in
        let p = dense(v[0], weight: slice(v[2], axis: 1, range: 0..<Ic), bias: nil)
        return gru(
          v[1], weightIH: slice(v[2], axis: 1, range: Ic..<(Ic + I)), weightHH: v[3], biasIH: v[4], biasHH: v[5],
          initialState: v[6], inputBias: p)
      }
      let explicit = valueAndGradients(inputs, seed: seed) { v in
        let repeated = v[0].reshaped([B, 1, Ic]) + v[0].tape.constant(Tensor(zeros: [1, T, 1]))
        return gru(
          concat([repeated, v[1]], axis: 2), weightIH: v[2], weightHH: v[3], biasIH: v[4], biasHH: v[5],
          initialState: v[6])
      }
      expectAgree(hoisted, explicit, gradientTolerance: 1e-3)
    }
    var rng = SeededRandom(seed: 5)
    let layer = GRU(inputSize: 6, hiddenSize: 4, layerCount: 2, name: "g", rng: &rng)
    let c = randn([2, 2], seed: 51)
    let x = randn([2, 5, 4], seed: 52)
    func run(_ hoist: Bool) -> (Tensor, [Tensor]) {
      for p in layer.parameters { p.gradient = Tensor(zeros: p.value.shape) }
      let tape = Tape()
      let cv = tape.variable(c)
      let xv = tape.variable(x)
      let out =
        hoist
        ? layer(xv, constantProjection: layer.constantProjection(cv, tape: tape), width: 2, initialStates: nil, tape: tape)
          .output
        : layer(
          concat([cv.reshaped([2, 1, 2]) + tape.constant(Tensor(zeros: [1, 5, 1])), xv], axis: 2), repeating: false,
          steps: 5, initialStates: nil, tape: tape
        ).output
      tape.backward(sum(out * tape.constant(randn([2, 5, 4], seed: 53))))
      return (out.value, [tape.gradient(of: cv)!, tape.gradient(of: xv)!] + layer.parameters.map(\.gradient))
    }
    let (a, ga) = run(true)
    let (b, gb) = run(false)
    #expect(zip(a.storage, b.storage).allSatisfy { abs($0 - $1) < 1e-5 })
    for (u, v) in zip(ga, gb) { #expect(zip(u.storage, v.storage).allSatisfy { abs($0 - $1) < 1e-4 }) }
    let r = checkGradients([randn([2, 4, 3], seed: 54), randn([12, 3], seed: 55, std: 0.5), randn([2, 12], seed: 56)]) { v in
      let t = v[0].tape
      return gru(
        v[0], weightIH: v[1], weightHH: t.constant(randn([12, 4], seed: 57, std: 0.5)),
        biasIH: t.constant(randn([12], seed: 58)), biasHH: t.constant(randn([12], seed: 59)), inputBias: v[2])
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  @Test func repeatedInputGradients() {
    let (B, T, I, H) = (2, 4, 3, 4)
    let inputs = [
      randn([B, I], seed: 21), randn([3 * H, I], seed: 22, std: 0.5),
      randn([3 * H, H], seed: 23, std: 0.5), randn([3 * H], seed: 24, std: 0.5),
      randn([3 * H], seed: 25, std: 0.5),
    ]
    let r = checkGradients(inputs) { v in
      gru(repeating: v[0], steps: T, weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4])
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }

  /// Long enough (B·T > the 4096-row chunk) that the chunked input projections and weight
  /// gradients span several chunks, one of them partial.
  @Test func multiChunkMatchesComposite() {
    let (B, T, I, H) = (64, 70, 3, 4)
    let inputs = [
      randn([B, T, I], seed: 31), randn([3 * H, I], seed: 32, std: 0.5),
      randn([3 * H, H], seed: 33, std: 0.5), randn([3 * H], seed: 34), randn([3 * H], seed: 35),
    ]
    var rng = SeededRandom(seed: 36)
    let seed = Tensor(randomNormal: [B, T, H], rng: &rng)
    let fused = valueAndGradients(inputs, seed: seed) { v in
      gru(v[0], weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4])
    }
    let composite = valueAndGradients(inputs, seed: seed) { v in
      compositeGRU(v[0], v[1], v[2], v[3], v[4])
    }
    expectAgree(fused, composite, gradientTolerance: 1e-3)
  }

  /// The layer's `callAsFunction(repeating:steps:tape:)` equals the layer on the repeat.
  @Test func layerRepeatingMatchesExplicitRepeat() {
    var rng = SeededRandom(seed: 41)
    let g = GRU(inputSize: 3, hiddenSize: 4, layerCount: 3, name: "gru", rng: &rng)
    let x = randn([2, 3], seed: 42)
    func run(_ repeating: Bool) -> (Tensor, [Tensor]) {
      for p in g.parameters { p.zeroGradient() }
      let tape = Tape()
      let v = tape.variable(x)
      let y =
        repeating
        ? g(repeating: v, steps: 5, tape: tape)
        : g(v.reshaped([2, 1, 3]) + tape.constant(Tensor(zeros: [1, 5, 1])), tape: tape)
      tape.backward(sum(y * y))
      return (y.value, [tape.gradient(of: v)!] + g.parameters.map(\.gradient))
    }
    expectAgree(run(true), run(false), gradientTolerance: 1e-4)
  }

  /// Saved gates come from a pool: a second step on a fresh tape (recycled buffers) gives
  /// the same result, and the no-gradient (inference) path matches the recording one.
  @Test func repeatedCallsAndInferenceAgree() {
    let (B, T, I, H) = (4, 7, 3, 6)
    let x = randn([B, T, I], seed: 51)
    let w = [
      randn([3 * H, I], seed: 52, std: 0.5), randn([3 * H, H], seed: 53, std: 0.5),
      randn([3 * H], seed: 54), randn([3 * H], seed: 55),
    ]
    func once(recording: Bool) -> Tensor {
      let tape = Tape(recording: recording)
      let v = [x] + w
      let vars = v.map { recording ? tape.variable($0) : tape.constant($0) }
      let y = gru(vars[0], weightIH: vars[1], weightHH: vars[2], biasIH: vars[3], biasHH: vars[4])
      if recording { tape.backward(sum(y)) }
      return y.value
    }
    let a = once(recording: true)
    let b = once(recording: true)
    let c = once(recording: false)
    #expect(a == b)
    #expect(zip(a.storage, c.storage).allSatisfy { abs($0 - $1) < 1e-6 })
  }
}

@Suite struct GRUBufferCacheTests {
  @Test func releasingCachedBuffersKeepsLiveTapesWorking() {
    let (B, T, I, H) = (2, 3, 2, 3)
    let tape = Tape()
    let v = [
      randn([B, T, I], seed: 61), randn([3 * H, I], seed: 62), randn([3 * H, H], seed: 63),
      randn([3 * H], seed: 64), randn([3 * H], seed: 65),
    ].map { tape.variable($0) }
    let y = gru(v[0], weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4])
    GRU.releaseCachedBuffers()
    tape.backward(sum(y))
    #expect(tape.gradient(of: v[2]) != nil)
    GRU.releaseCachedBuffers()
  }
}
