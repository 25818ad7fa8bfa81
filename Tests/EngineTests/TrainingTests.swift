import Engine
import Testing

/// A 2-8-1 tanh/sigmoid network trained on XOR with plain SGD and binary cross-entropy,
/// built from engine ops only. Returns the loss history and the final weights.
func trainXOR(seed: UInt64, steps: Int, learningRate: Float = 0.5) -> (
  losses: [Float], weights: [Tensor]
) {
  var rng = SeededRandom(seed: seed)
  let w1 = Parameter("w1", Tensor(randomNormal: [2, 8], std: 1, rng: &rng))
  let b1 = Parameter("b1", Tensor(zeros: [8]))
  let w2 = Parameter("w2", Tensor(randomNormal: [8, 1], std: 1, rng: &rng))
  let b2 = Parameter("b2", Tensor(zeros: [1]))
  let parameters = [w1, b1, w2, b2]
  let x = Tensor(shape: [4, 2], storage: [0, 0, 0, 1, 1, 0, 1, 1])
  let target = Tensor(shape: [4, 1], storage: [0, 1, 1, 0])
  var losses: [Float] = []
  for _ in 0..<steps {
    let tape = Tape()
    let h = tanh(matmul(tape.constant(x), tape.parameter(w1)) + tape.parameter(b1))
    let p = sigmoid(matmul(h, tape.parameter(w2)) + tape.parameter(b2))
    let t = tape.constant(target)
    // Binary cross-entropy; the 1e-6 keeps log away from 0.
    let loss = -mean(t * log(p + 1e-6) + (1 - t) * log(1 - p + 1e-6))
    losses.append(loss.value.scalar)
    for q in parameters { q.zeroGradient() }
    tape.backward(loss)
    for q in parameters { q.value.add(q.gradient, scaledBy: -learningRate) }
  }
  return (losses, parameters.map(\.value))
}

@Suite struct TrainingTests {
  @Test func mlpLearnsXOR() {
    let (losses, _) = trainXOR(seed: 11, steps: 1500)
    #expect(losses[0] > 0.5)
    #expect(losses.last! < 0.05, "final loss \(losses.last!)")
  }

  @Test func seededTrainingIsBitForBitRepeatable() {
    let a = trainXOR(seed: 4, steps: 50)
    let b = trainXOR(seed: 4, steps: 50)
    #expect(a.weights == b.weights)
    #expect(a.losses == b.losses)
  }
}
