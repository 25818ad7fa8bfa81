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
    func run(_ f: ([Var]) -> Var) -> (Tensor, [Tensor]) {
      let tape = Tape()
      let vars = inputs.map { tape.variable($0) }
      let y = f(vars)
      tape.backward(y, seed: seed)
      return (y.value, vars.map { tape.gradient(of: $0)! })
    }
    let (yf, gf) = run { v in gru(v[0], weightIH: v[1], weightHH: v[2], biasIH: v[3], biasHH: v[4])
    }
    let (yc, gc) = run { v in compositeGRU(v[0], v[1], v[2], v[3], v[4]) }
    #expect(yf.shape == yc.shape)
    #expect(zip(yf.storage, yc.storage).allSatisfy { abs($0 - $1) < 1e-5 })
    for (a, b) in zip(gf, gc) {
      let worst = zip(a.storage, b.storage).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
      #expect(worst < 1e-4, "gradient \(a.shape): worst \(worst)")
    }
  }
}
