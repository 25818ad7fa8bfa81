import Engine
import Foundation
import NN
import TestSupport
import Testing

@Suite struct LossTests {
  @Test func maskedWeightedCrossEntropyGradients() {
    let (B, T, C) = (2, 3, 5)
    var rng = SeededRandom(seed: 3)
    var mask = Tensor(zeros: [B, T, C])
    var targets: [Int] = []
    for r in 0..<(B * T) {
      let target = Int(rng.next() % UInt64(C))
      targets.append(target)
      for c in 0..<C { mask.storage[r * C + c] = (c == target || rng.nextUniform() < 0.5) ? 1 : 0 }
    }
    let weights = Tensor(randomUniform: [B, T], low: 0.5, high: 2, rng: &rng)
    for reduction in [LossReduction.batchMean, .mean, .sum] {
      let r = checkGradients([randn([B, T, C], seed: 4)]) { v in
        softmaxCrossEntropy(
          logits: v[0], targets: targets, mask: mask, weights: weights, reduction: reduction)
      }
      #expect(r.worstError < 1e-2, "\(reduction): \(r)")
    }
  }

  @Test func maskedCrossEntropyRenormalisesOverAllowedClasses() {
    let tape = Tape(recording: false)
    let logits = tape.constant(Tensor(shape: [1, 3], storage: [1, 2, 50]))
    let mask = Tensor(shape: [1, 3], storage: [1, 1, 0])
    let loss = softmaxCrossEntropy(logits: logits, targets: [1], mask: mask).value.scalar
    let expected = logf(expf(1) + expf(2)) - 2
    #expect(abs(loss - expected) < 1e-5)
    let unmasked = softmaxCrossEntropy(logits: logits, targets: [1]).value.scalar
    #expect(unmasked > 40)
  }

  @Test func binaryCrossEntropyGradientsAndStability() {
    var rng = SeededRandom(seed: 5)
    let t = Tensor(randomUniform: [3, 4], rng: &rng)
    let r = checkGradients([randn([3, 4], seed: 6, std: 2)]) { v in
      binaryCrossEntropy(logits: v[0], targets: t)
    }
    #expect(r.worstError < 1e-2, "\(r)")
    let tape = Tape(recording: false)
    let big = binaryCrossEntropy(
      logits: tape.constant(Tensor(shape: [2], storage: [100, -100])),
      targets: Tensor(shape: [2], storage: [0, 1]))
    #expect(abs(big.value.scalar - 100) < 1e-3)
  }

  @Test func klGradientsAndValue() {
    for reduction in [KLReduction.sumOverDimensions, .meanOverDimensions] {
      let r = checkGradients([randn([3, 4], seed: 7), randn([3, 4], seed: 8, std: 0.5)]) { v in
        gaussianKLDivergence(mean: v[0], logVariance: v[1], reduction: reduction)
      }
      #expect(r.worstError < 1e-2, "\(r)")
    }
    let tape = Tape(recording: false)
    let zero = gaussianKLDivergence(
      mean: tape.constant(Tensor(zeros: [2, 3])), logVariance: tape.constant(Tensor(zeros: [2, 3])))
    #expect(zero.value.scalar == 0)
    // μ = 1 in one of 2 dims: KL = ½ per example.
    let one = gaussianKLDivergence(
      mean: tape.constant(Tensor(shape: [1, 2], storage: [1, 0])),
      logVariance: tape.constant(Tensor(zeros: [1, 2])))
    #expect(abs(one.value.scalar - 0.5) < 1e-6)
  }

  @Test func mseGradients() {
    let r = checkGradients([randn([2, 3], seed: 9), randn([2, 3], seed: 10)]) { v in
      meanSquaredError(v[0], v[1])
    }
    #expect(r.worstError < 1e-2, "\(r)")
  }
}
