import Engine
import Foundation
import NN
import Testing

@testable import GrammarVAE

/// NN's optimiser pieces as the trainer configures them.
@Suite struct OptimizationTests {
  @Test func plateauReducesAfterPatienceAndStopsAtTheMinimum() {
    var s = ReduceLROnPlateau(factor: 0.2, patience: 1, minLearningRate: 1e-4, minDelta: 0)
    var lr: Float = 1e-3
    lr = s.step(metric: 5.0, learningRate: lr)
    #expect(lr == 1e-3)
    lr = s.step(metric: 6.0, learningRate: lr)
    #expect(abs(lr - 2e-4) < 1e-9)
    lr = s.step(metric: 7.0, learningRate: lr)
    #expect(lr == 1e-4)
    lr = s.step(metric: 4.0, learningRate: lr)
    #expect(lr == 1e-4)
    var p3 = ReduceLROnPlateau(factor: 0.5, patience: 3, minDelta: 0)
    var r: Float = 1
    for loss in [3.0, 4, 4, 4] { r = p3.step(metric: loss, learningRate: r) }
    #expect(r == 0.5)
  }

  @Test func plateauStateKeepsItsCheckpointKeys() throws {
    let json = #"{"badEpochs":2,"best":1.25,"factor":0.2,"minimum":0.0001,"patience":3}"#
    let coded = try JSONDecoder().decode(PlateauCheckpointCoding.self, from: Data(json.utf8))
    let s = coded.wrappedValue
    #expect(s.wait == 2 && s.best == 1.25 && s.factor == 0.2 && s.patience == 3)
    #expect(s.minLearningRate == 1e-4 && s.minDelta == 0)
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    #expect(String(decoding: try e.encode(coded), as: UTF8.self) == json)
  }

  @Test func adamFirstStepMovesByTheLearningRate() {
    let p = Parameter("w", Tensor(shape: [3], storage: [1, 2, 3]))
    p.gradient = Tensor(shape: [3], storage: [0.5, -2, 0])
    let adam = Adam(
      parameters: [p], hyperparameters: Trainer.adamHyperparameters(learningRate: 0.1))
    adam.step()
    #expect(abs(p.value.storage[0] - 0.9) < 1e-5)
    #expect(abs(p.value.storage[1] - 2.1) < 1e-5)
    #expect(p.value.storage[2] == 3)
  }

  @Test func clippingScalesTheGlobalNorm() {
    let p = Parameter("w", Tensor(shape: [2], storage: [0, 0]))
    p.gradient = Tensor(shape: [2], storage: [3, 4])
    let norm = clipGradientsByGlobalNorm([p], maxNorm: 1, epsilon: 0)
    #expect(norm == 5)
    #expect(abs(p.gradient.storage[0] - 0.6) < 1e-6)
  }
}
