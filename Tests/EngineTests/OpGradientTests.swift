import Engine
import TestSupport
import Testing

/// One finite-difference gradient check: named inputs and the function under test.
struct GradientCase: CustomTestStringConvertible, Sendable {
  let id: String
  let shapes: [[Int]]
  /// Inputs are drawn uniformly from this range (kept away from kinks and poles).
  let low: Float
  let high: Float
  let f: @Sendable ([Var]) -> Var

  init(
    _ id: String, _ shapes: [[Int]], low: Float = -1.5, high: Float = 1.5,
    _ f: @escaping @Sendable ([Var]) -> Var
  ) {
    self.id = id
    self.shapes = shapes
    self.low = low
    self.high = high
    self.f = f
  }

  var testDescription: String { id }

  func inputs() -> [Tensor] {
    var rng = SeededRandom(seed: UInt64(id.utf8.reduce(5381) { ($0 &* 33) ^ UInt64($1) } & 0xffff))
    return shapes.map { shape in
      var t = Tensor(randomUniform: shape, low: low, high: high, rng: &rng)
      // Push values away from 0 so relu/abs kinks and sign flips are never straddled.
      if low < 0 { t = t.map { $0 >= 0 ? $0 + 0.1 : $0 - 0.1 } }
      return t
    }
  }
}

let elementwiseCases: [GradientCase] = [
  GradientCase("add same shape", [[3, 4], [3, 4]]) { $0[0] + $0[1] },
  GradientCase("add bias row", [[3, 4], [4]]) { $0[0] + $0[1] },
  GradientCase("add outer", [[3, 1], [1, 4]]) { $0[0] + $0[1] },
  GradientCase("add rank-3 vs column", [[2, 3, 4], [3, 1]]) { $0[0] + $0[1] },
  GradientCase("add scalar tensor", [[], [2, 3]]) { $0[0] + $0[1] },
  GradientCase("subtract broadcast left", [[4], [3, 4]]) { $0[0] - $0[1] },
  GradientCase("subtract broadcast right", [[2, 3], [2, 1]]) { $0[0] - $0[1] },
  GradientCase("multiply broadcast middle", [[2, 3, 4], [2, 1, 4]]) { $0[0] * $0[1] },
  GradientCase("multiply both broadcast", [[2, 1, 4], [3, 1]]) { $0[0] * $0[1] },
  GradientCase("divide broadcast", [[3, 4], [4]], low: 0.5, high: 2) { $0[0] / $0[1] },
  GradientCase("divide by column", [[3, 4], [3, 1]], low: 0.5, high: 2) { $0[0] / $0[1] },
  GradientCase("reuse accumulates", [[3, 3]]) { $0[0] * $0[0] + $0[0] },
  GradientCase("var plus float", [[2, 3]]) { $0[0] + 2 },
  GradientCase("float minus var", [[2, 3]]) { 2 - $0[0] },
  GradientCase("var minus float", [[2, 3]]) { $0[0] - 0.5 },
  GradientCase("float times var", [[2, 3]]) { 3 * $0[0] },
  GradientCase("var divided by float", [[2, 3]]) { $0[0] / 4 },
  GradientCase("float divided by var", [[2, 3]], low: 0.5, high: 2) { 3 / $0[0] },
  GradientCase("negate", [[2, 3]]) { -$0[0] },
  GradientCase("exp", [[3, 4]]) { exp($0[0]) },
  GradientCase("log", [[3, 4]], low: 0.3, high: 3) { log($0[0]) },
  GradientCase("tanh", [[3, 4]]) { tanh($0[0]) },
  GradientCase("sigmoid", [[3, 4]], low: -4, high: 4) { sigmoid($0[0]) },
  GradientCase("relu", [[3, 4]]) { relu($0[0]) },
  GradientCase("leakyRelu", [[3, 4]]) { leakyRelu($0[0], slope: 0.2) },
  GradientCase("softplus", [[3, 4]], low: -4, high: 4) { softplus($0[0]) },
  GradientCase("sqrt", [[3, 4]], low: 0.3, high: 3) { sqrt($0[0]) },
  GradientCase("square", [[3, 4]]) { square($0[0]) },
  GradientCase("abs", [[3, 4]]) { abs($0[0]) },
  GradientCase("dropout training", [[4, 5]]) { v in
    var rng = SeededRandom(seed: 3)
    return dropout(v[0], rate: 0.3, rng: &rng, training: true)
  },
  GradientCase("dropout inference", [[4, 5]]) { v in
    var rng = SeededRandom(seed: 3)
    return dropout(v[0], rate: 0.3, rng: &rng, training: false) * 2
  },
]

let reductionCases: [GradientCase] = [
  GradientCase("sum all", [[3, 4]]) { sum($0[0]) },
  GradientCase("sum axis 0", [[3, 4]]) { sum($0[0], axes: [0]) },
  GradientCase("sum axes 1,2 keep", [[2, 3, 4]]) { sum($0[0], axes: [1, 2], keepingDims: true) },
  GradientCase("sum negative axis", [[2, 3, 4]]) { sum($0[0], axes: [-1]) },
  GradientCase("mean all", [[3, 4]]) { mean($0[0]) },
  GradientCase("mean axis 1", [[3, 4]]) { mean($0[0], axes: [1], keepingDims: true) * $0[0] },
  GradientCase("max axis 1", [[3, 5]]) { max($0[0], axis: 1) },
  GradientCase("max axis 0 keep", [[4, 3]]) { max($0[0], axis: 0, keepingDims: true) * $0[0] },
  GradientCase("max middle axis", [[2, 4, 3]]) { max($0[0], axis: 1) },
  GradientCase("logSumExp axis 1", [[3, 5]], low: -3, high: 3) { logSumExp($0[0], axis: 1) },
  GradientCase("logSumExp axis 0 keep", [[4, 3]], low: -3, high: 3) {
    logSumExp($0[0], axis: 0, keepingDims: true) - $0[0]
  },
  GradientCase("softmax last", [[3, 5]], low: -2, high: 2) { softmax($0[0]) },
  GradientCase("softmax axis 0", [[4, 3]], low: -2, high: 2) { softmax($0[0], axis: 0) },
  GradientCase("logSoftmax last", [[3, 5]], low: -2, high: 2) { logSoftmax($0[0], axis: -1) },
  GradientCase("logSoftmax middle", [[2, 4, 3]], low: -2, high: 2) { logSoftmax($0[0], axis: 1) },
  GradientCase("masked softmax", [[3, 5]], low: -2, high: 2) { v in
    softmax(v[0], axis: 1, mask: Tensor(shape: [1, 5], storage: [1, 0, 1, 1, 0]))
  },
  GradientCase("masked softmax per row", [[3, 4]], low: -2, high: 2) { v in
    let mask = Tensor(shape: [3, 4], storage: [1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1])
    return softmax(v[0], mask: mask)
  },
  GradientCase("masked logSoftmax allowed part", [[3, 5]], low: -2, high: 2) { v in
    let mask = Tensor(shape: [5], storage: [1, 1, 1, 0, 0])
    return slice(logSoftmax(v[0], mask: mask), axis: 1, range: 0..<3)
  },
  GradientCase("masked logSoftmax with empty row", [[3, 4]], low: -2, high: 2) { v in
    let mask = Tensor(shape: [3, 4], storage: [1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1])
    return exp(logSoftmax(v[0], mask: mask))
  },
]

let linearAndShapeCases: [GradientCase] = [
  GradientCase("matmul", [[3, 4], [4, 2]]) { matmul($0[0], $0[1]) },
  GradientCase("matmul Aᵀ", [[4, 3], [4, 2]]) { matmul($0[0], $0[1], transposeA: true) },
  GradientCase("matmul Bᵀ", [[3, 4], [2, 4]]) { matmul($0[0], $0[1], transposeB: true) },
  GradientCase("matmul AᵀBᵀ", [[4, 3], [2, 4]]) {
    matmul($0[0], $0[1], transposeA: true, transposeB: true)
  },
  GradientCase("batchedMatmul", [[2, 3, 4], [2, 4, 5]]) { batchedMatmul($0[0], $0[1]) },
  GradientCase("batchedMatmul Bᵀ", [[2, 3, 4], [2, 5, 4]]) {
    batchedMatmul($0[0], $0[1], transposeB: true)
  },
  GradientCase("batchedMatmul Aᵀ", [[2, 4, 3], [2, 4, 5]]) {
    batchedMatmul($0[0], $0[1], transposeA: true)
  },
  GradientCase("reshape", [[2, 6]]) { reshape($0[0], [3, -1]) * $0[0].reshaped([3, 4]) },
  GradientCase("transpose", [[2, 3], [3, 2]]) { transpose($0[0]) * $0[1] },
  GradientCase("permute", [[2, 3, 4]]) { permute($0[0], [2, 0, 1]) },
  GradientCase("permute swap last", [[2, 3, 4]]) { permute($0[0], [0, 2, 1]) },
  GradientCase("slice axis 1", [[3, 5]]) { slice($0[0], axis: 1, range: 1..<4) },
  GradientCase("slice axis 0", [[4, 2, 3]]) { slice($0[0], axis: 0, range: 2..<4) },
  GradientCase("concat axis 0", [[2, 3], [1, 3]]) { concat([$0[0], $0[1], $0[0]], axis: 0) },
  GradientCase("concat axis 1", [[2, 3], [2, 2]]) { concat([$0[0], $0[1]], axis: 1) },
  GradientCase("stack axis 0", [[2, 3], [2, 3]]) { stack([$0[0], $0[1]], axis: 0) },
  GradientCase("stack last axis", [[2, 3], [2, 3]]) { stack([$0[0], $0[1], $0[0]], axis: 2) },
  GradientCase("gather repeated rows", [[4, 3]]) { gather($0[0], indices: [2, 0, 2, 3]) },
  GradientCase("gather rank 3", [[3, 2, 2]]) { gather($0[0], indices: [1, 1]) },
  GradientCase("mlp composite", [[4, 3], [3, 5], [5]]) { v in
    sum(sigmoid(tanh(matmul(v[0], v[1]) + v[2])), axes: [1])
  },
]

@Suite struct OpGradientTests {
  @Test(arguments: elementwiseCases)
  func elementwise(_ c: GradientCase) {
    let r = checkGradients(c.inputs(), c.f)
    #expect(r.worstError < 1e-2, "\(c.id): \(r)")
  }

  @Test(arguments: reductionCases)
  func reductions(_ c: GradientCase) {
    let r = checkGradients(c.inputs(), c.f)
    #expect(r.worstError < 1e-2, "\(c.id): \(r)")
  }

  @Test(arguments: linearAndShapeCases)
  func linearAndShape(_ c: GradientCase) {
    let r = checkGradients(c.inputs(), c.f)
    #expect(r.worstError < 1e-2, "\(c.id): \(r)")
  }

  @Test func checkerCatchesAWrongGradient() {
    // A sanity check of the checker itself: softplus's gradient is not tanh's.
    let x = Tensor(shape: [3], storage: [0.3, -0.7, 1.2])
    let good = checkGradients([x]) { softplus($0[0]) }
    #expect(good.worstError < 1e-2)
    let wrong = checkGradients([x]) { v in
      // Value of softplus, gradient path of x (slope 1): differs from sigmoid(x).
      let s = softplus(v[0])
      return v[0] + v[0].tape.constant(s.value) - v[0].tape.constant(v[0].value)
    }
    #expect(wrong.worstError > 1e-2)
  }
}
