import Engine
import Testing
@testable import GrammarVAE

@Suite struct OptimizationTests {
  @Test func plateauReducesAfterPatienceAndStopsAtTheMinimum() {
    var s = PlateauSchedule(factor: 0.2, patience: 1, minimum: 1e-4)
    var lr: Float = 1e-3
    lr = s.step(loss: 5, learningRate: lr)
    #expect(lr == 1e-3)
    lr = s.step(loss: 6, learningRate: lr)
    #expect(abs(lr - 2e-4) < 1e-9)
    lr = s.step(loss: 7, learningRate: lr)
    #expect(lr == 1e-4)
    lr = s.step(loss: 4, learningRate: lr)
    #expect(lr == 1e-4)
    var p3 = PlateauSchedule(factor: 0.5, patience: 3)
    var r: Float = 1
    for loss in [3.0, 4, 4, 4] { r = p3.step(loss: loss, learningRate: r) }
    #expect(r == 0.5)
  }

  @Test func adamFirstStepMovesByTheLearningRate() {
    let p = Parameter("w", Tensor(shape: [3], storage: [1, 2, 3]))
    p.gradient = Tensor(shape: [3], storage: [0.5, -2, 0])
    var adam = AdamState(parameters: [p])
    adam.update([p], learningRate: 0.1)
    #expect(abs(p.value.storage[0] - 0.9) < 1e-5)
    #expect(abs(p.value.storage[1] - 2.1) < 1e-5)
    #expect(p.value.storage[2] == 3)
  }

  @Test func clippingScalesTheGlobalNorm() {
    let p = Parameter("w", Tensor(shape: [2], storage: [0, 0]))
    p.gradient = Tensor(shape: [2], storage: [3, 4])
    let norm = clipGradients([p], maxNorm: 1)
    #expect(norm == 5)
    #expect(abs(p.gradient.storage[0] - 0.6) < 1e-6)
  }
}
