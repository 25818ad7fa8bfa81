import CFG
import Engine
import Testing

@testable import GrammarVAE

@Suite struct NetworkTests {
  /// Central differences against the fused backward pass, for every parameter tensor.
  @Test(arguments: [(ModelKind.grammar, false), (.grammar, true), (.character, false)])
  func gradientCheck(kind: ModelKind, batchNorm: Bool) throws {
    let model = try tinyModel(kind: kind, batchNorm: batchNorm, seed: 3)
    let data = encoded(Array(tinyExpressions.prefix(5)), model)
    let net = model.network
    let batch = TrainingBatch(
      sequences: data.sequences, rows: data.count,
      decoderSteps: kind == .grammar ? Int(data.lengths.max()!) : data.steps)
    func loss() -> Double {
      var rng = SplitMix64(seed: 9)
      let t = net.trainStep(
        batch, batchRows: data.count, mask: model.lossMask, klWeight: 0.7, rng: &rng,
        updateRunning: false, computeGradients: false)
      return (t.reconstruction + 0.7 * t.kl) / Double(data.count)
    }
    net.zeroGradients()
    var rng = SplitMix64(seed: 9)
    _ = net.trainStep(
      batch, batchRows: data.count, mask: model.lossMask, klWeight: 0.7, rng: &rng,
      updateRunning: false)
    var worst = 0.0
    var worstName = ""
    // With batch norm after ReLU, the many tied ReLU outputs make finite differences of the
    // convolution parameters cross kinks; BatchNormTests checks the norm's backward alone.
    for p in net.parameters where !(batchNorm && p.name.hasPrefix("encoder.conv")) {
      let n = p.value.count
      for k in Set([0, n / 3, n / 2, n - 1]) {
        let original = p.value.storage[k]
        let h: Float = 2e-3
        p.value.storage[k] = original + h
        let up = loss()
        p.value.storage[k] = original - h
        let down = loss()
        p.value.storage[k] = original
        let numeric = (up - down) / Double(2 * h)
        let analytic = Double(p.gradient.storage[k])
        let err = abs(analytic - numeric) / max(1, abs(analytic), abs(numeric))
        if err > worst {
          worst = err
          worstName = "\(p.name)[\(k)] analytic \(analytic) numeric \(numeric)"
        }
      }
    }
    #expect(worst < 1e-2, "worst: \(worstName)")
  }

  /// Skipping the padding steps leaves the loss unchanged (their masked cross-entropy is 0).
  @Test func truncatedStepsGiveTheSameLoss() throws {
    let model = try tinyModel(seed: 4)
    let data = encoded(tinyExpressions, model)
    func loss(_ steps: Int) -> Double {
      var rng = SplitMix64(seed: 2)
      let t = model.network.trainStep(
        TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: steps),
        batchRows: data.count, mask: model.lossMask, klWeight: 1, rng: &rng,
        updateRunning: false, computeGradients: false)
      return t.reconstruction
    }
    let longest = Int(data.lengths.max()!)
    #expect(longest < 15)
    #expect(abs(loss(longest) - loss(15)) < 1e-4 * max(1, loss(15)))
  }
}
