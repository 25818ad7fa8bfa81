import Engine
import Foundation
import NN
import TestSupport
import Testing

@Suite struct LikelihoodTests {
  @Test func bernoulliLogLikelihoodGradientsAndValues() {
    var rng = SeededRandom(seed: 11)
    let t = Tensor(randomUniform: [2, 3, 5], rng: &rng)
    let r = checkGradients([randn([2, 3, 5], seed: 12, std: 2)]) { v in
      bernoulliLogLikelihood(logits: v[0], targets: t)
    }
    #expect(r.worstError < 1e-2, "\(r)")
    // Rows of exact values, and agreement with the mean binary cross-entropy.
    let tape = Tape(recording: false)
    let x = Tensor(shape: [2, 3], storage: [0, 2, -3, 100, -100, 0.5])
    let y = Tensor(shape: [2, 3], storage: [1, 0, 1, 0, 1, 1])
    let ll = bernoulliLogLikelihood(logits: tape.constant(x), targets: y).value
    #expect(ll.shape == [2])
    func logSigmoid(_ v: Double) -> Double { -Foundation.log(1 + Foundation.exp(-v)) }
    let row0 = logSigmoid(0) + logSigmoid(-2) + logSigmoid(-3)
    #expect(abs(Double(ll.storage[0]) - row0) < 1e-5)
    #expect(abs(Double(ll.storage[1]) - (-200 + logSigmoid(0.5))) < 1e-3)
    let bce = binaryCrossEntropy(logits: tape.constant(x), targets: y, reduction: .sum).value.scalar
    #expect(abs(-(ll.storage[0] + ll.storage[1]) - bce) < 1e-3)
  }

  @Test func bernoulliTargetsRepeatOverRows() {
    // Logits [3·2, 4] against targets [2, 4]: the same values and gradients as tiling them.
    var rng = SeededRandom(seed: 17)
    let t = Tensor(randomUniform: [2, 4], rng: &rng)
    var tiled = t
    tiled = Tensor(shape: [6, 4], storage: t.storage + t.storage + t.storage)
    let r = checkGradients([randn([6, 4], seed: 18, std: 2)]) { v in bernoulliLogLikelihood(logits: v[0], targets: t) }
    #expect(r.worstError < 1e-2, "\(r)")
    let tape = Tape()
    let x = tape.variable(randn([6, 4], seed: 19))
    let a = bernoulliLogLikelihood(logits: x, targets: t)
    let b = bernoulliLogLikelihood(logits: x, targets: tiled)
    #expect(a.value == b.value)
    tape.backward(sum(a) - sum(b) * 0.5)
    let g = tape.gradient(of: x)!
    let tape2 = Tape()
    let x2 = tape2.variable(x.value)
    tape2.backward(sum(bernoulliLogLikelihood(logits: x2, targets: tiled)) * 0.5)
    #expect(g == tape2.gradient(of: x2)!)
  }

  @Test func gaussianLogDensitiesGradientsAndValues() {
    // Samples [2, 3, 4] against parameters [1, 3, 4], broadcast as the IWAE bound does.
    let r = checkGradients([randn([2, 3, 4], seed: 13), randn([1, 3, 4], seed: 14), randn([1, 3, 4], seed: 15, std: 0.5)]) { v in
      diagonalGaussianLogDensity(v[0], mean: v[1], logVariance: v[2])
    }
    #expect(r.worstError < 1e-2, "\(r)")
    let s = checkGradients([randn([3, 4], seed: 16)]) { v in standardNormalLogDensity(v[0]) }
    #expect(s.worstError < 1e-2, "\(s)")
    let tape = Tape(recording: false)
    let z = tape.constant(Tensor(shape: [1, 2], storage: [1, -2]))
    let std = standardNormalLogDensity(z).value.scalar
    #expect(abs(Double(std) - (-Foundation.log(2 * Double.pi) - 2.5)) < 1e-5)
    // N(1; 0, e²) in one dimension: −½(log 2π + 2 + e⁻²).
    let one = diagonalGaussianLogDensity(
      tape.constant(Tensor(shape: [1, 1], storage: [1])), mean: tape.constant(Tensor(shape: [1, 1], storage: [0])),
      logVariance: tape.constant(Tensor(shape: [1, 1], storage: [2]))).value.storage[0]
    #expect(abs(Double(one) - (-0.5 * (Foundation.log(2 * Double.pi) + 2 + Foundation.exp(-2.0)))) < 1e-5)
  }
}
