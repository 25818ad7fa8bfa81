import CFG
import Engine
import Testing

@testable import GrammarVAE

/// The whole network's training objective, as `Trainer` calls it, checked end to end.
@Suite struct NetworkTests {
  struct Case: CustomStringConvertible, Sendable {
    var kind: ModelKind
    var decoder: DecoderKind
    var batchNorm: Bool
    var description: String { "\(kind) \(decoder)\(batchNorm ? " batch-norm" : "")" }
  }

  /// Loss of one batch (with fixed noise) and, when asked, its gradients in the parameters.
  func objective(_ model: VAEModel, _ batch: TrainingBatch, gradients: Bool) -> Double {
    var rng = SeededRandom(seed: 9)
    if gradients { model.network.zeroGradients() }
    let t = model.network.trainStep(
      batch, batchRows: batch.rows, mask: model.lossMask, klWeight: 0.7, rng: &rng,
      computeGradients: gradients)
    return (t.reconstruction + 0.7 * t.kl) / Double(batch.rows)
  }

  /// Central differences against the backward pass for every parameter tensor of a 3-layer
  /// GRU network: 12 sampled entries per tensor, compared as vectors (the difference's norm
  /// against 3% of the gradient's, plus the Float32 rounding of the loss), so a dropped or
  /// wrong term in any layer fails. Biases start off zero: with zero biases a ReLU whose inputs
  /// are all zero sits exactly on its kink, where central differences see half a slope.
  @Test(arguments: [
    Case(kind: .grammar, decoder: .repeated, batchNorm: false),
    Case(kind: .grammar, decoder: .repeated, batchNorm: true),
    Case(kind: .grammar, decoder: .autoregressive, batchNorm: true),
    Case(kind: .character, decoder: .autoregressive, batchNorm: false),
    Case(kind: .character, decoder: .repeated, batchNorm: true),
  ])
  func wholeNetworkGradientCheck(_ c: Case) throws {
    let model = try tinyModel(
      kind: c.kind, batchNorm: c.batchNorm, seed: 3, decoder: c.decoder, gruLayers: 3)
    let data = encoded(Array(tinyExpressions.prefix(6)), model)
    let steps = c.kind == .grammar ? Int(data.lengths.max()!) : data.steps
    let batch = TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: steps)
    var rng = SeededRandom(seed: 11)
    for p in model.network.parameters where p.name.hasSuffix("bias") {
      for i in 0..<p.value.count { p.value.storage[i] += 0.1 * (rng.nextUniform() - 0.5) }
    }
    let h: Float = 3e-3
    let value = objective(model, batch, gradients: true)
    // Each loss is a Float32 sum: rounding limits a central difference to about ulp / h.
    let noise = Double(Float(value).ulp) / Double(h)
    var failures: [String] = []
    var checked = 0
    var kinks = 0
    var sampled = 0
    for p in model.network.parameters {
      let n = p.value.count
      var picks = Set<Int>()
      while picks.count < min(12, n) { picks.insert(Int(rng.next() % UInt64(n))) }
      var diff = 0.0
      var norm = 0.0
      var detail = ""
      for k in picks.sorted() {
        let original = p.value.storage[k]
        p.value.storage[k] = original + h
        let up = objective(model, batch, gradients: false)
        p.value.storage[k] = original - h
        let down = objective(model, batch, gradients: false)
        p.value.storage[k] = original
        // A ReLU input within h of 0 puts a kink inside the difference: the one-sided
        // slopes then disagree, and the entry says nothing about the backward pass.
        let right = (up - value) / Double(h)
        let left = (value - down) / Double(h)
        if abs(right - left) > 0.2 * max(abs(right), abs(left)) + 20 * noise {
          kinks += 1
          continue
        }
        let numeric = (up - down) / Double(2 * h)
        let analytic = Double(p.gradient.storage[k])
        diff += (analytic - numeric) * (analytic - numeric)
        norm = max(norm, analytic * analytic, numeric * numeric)
        detail += " [\(k)] \(analytic) vs \(numeric)"
      }
      sampled += picks.count
      let k = Double(picks.count)
      // Tensors whose sampled gradient is all below the rounding say nothing either way.
      guard norm.squareRoot() > 10 * noise else { continue }
      checked += 1
      let err = diff.squareRoot()
      let allowed = 0.03 * (norm * k).squareRoot() + 3 * noise * k.squareRoot()
      if err > allowed { failures.append("\(p.name): error \(err) > \(allowed):\(detail)") }
    }
    #expect(failures.isEmpty, "\(c): \(failures.joined(separator: "\n"))")
    #expect(kinks * 20 <= sampled, "\(kinks) of \(sampled) entries straddled a kink")
    #expect(
      checked >= model.network.parameters.count - 3,
      "only \(checked) of \(model.network.parameters.count) tensors had a gradient above the rounding")
  }

  /// Decoding only up to the longest derivation gives the same loss and the same gradients as
  /// decoding every padding step, for both decoders.
  @Test(arguments: [DecoderKind.repeated, .autoregressive])
  func truncatedStepsGiveTheSameLossAndGradients(decoder: DecoderKind) throws {
    let model = try tinyModel(seed: 4, decoder: decoder, gruLayers: 3)
    let data = encoded(tinyExpressions, model)
    let longest = Int(data.lengths.max()!)
    #expect(longest < data.steps)
    func run(_ steps: Int) -> (Double, [Float]) {
      let loss = objective(
        model, TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: steps),
        gradients: true)
      return (loss, model.network.parameters.flatMap(\.gradient.storage))
    }
    let (short, gShort) = run(longest)
    let (full, gFull) = run(data.steps)
    #expect(abs(short - full) < 1e-5 * max(1, abs(full)))
    var worst: Float = 0
    var scale: Float = 0
    for (a, b) in zip(gShort, gFull) {
      worst = max(worst, abs(a - b))
      scale = max(scale, abs(b))
    }
    #expect(scale > 0 && worst <= 1e-5 * scale, "gradients differ by \(worst) (largest \(scale))")
  }

  /// The step-by-step decoder computes the teacher-forced logits when fed the targets: the
  /// recurrence used for decoding is the one that was trained.
  @Test(arguments: [DecoderKind.repeated, .autoregressive])
  func steppedDecoderMatchesTeacherForcing(decoder: DecoderKind) throws {
    let model = try tinyModel(batchNorm: true, seed: 5, decoder: decoder, gruLayers: 2)
    let net = model.network
    let data = encoded(Array(tinyExpressions.prefix(4)), model)
    let T = data.steps
    let B = data.count
    let z = Tensor(randomNormal: [B, model.configuration.latentSize], rng: &Self.rng)
    let tape = Tape(recording: false)
    let d = net.decoderInput(tape.constant(z), training: false)
    var previous = [Int](repeating: net.startIndex, count: B * T)
    for b in 0..<B { for t in 1..<T { previous[b * T + t] = Int(data.sequences[b * T + t - 1]) } }
    let forced = net.decoderLogits(d, previous: previous, steps: T).value  // [B, T, V]
    let stream = DecoderStream(network: net, latents: z)
    let V = model.configuration.vocabularySize
    var worst: Float = 0
    for t in 0..<T {
      let prev = t == 0 ? nil : (0..<B).map { Int(data.sequences[$0 * T + t - 1]) }
      let step = stream.step(previous: prev)
      for b in 0..<B {
        for v in 0..<V {
          worst = max(worst, abs(step.storage[b * V + v] - forced.storage[(b * T + t) * V + v]))
        }
      }
    }
    #expect(worst < 1e-5, "stepped and teacher-forced logits differ by \(worst)")
  }

  nonisolated(unsafe) static var rng = SeededRandom(seed: 77)

  /// Validation runs batch norm on its running statistics and leaves them unchanged.
  @Test func validationUsesRunningStatistics() throws {
    let model = try tinyModel(batchNorm: true, seed: 6)
    let data = encoded(tinyExpressions, model)
    let batch = TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: data.steps)
    let before = model.network.buffers.map(\.value)
    var rng = SeededRandom(seed: 1)
    let a = model.network.trainStep(
      batch, batchRows: data.count, mask: model.lossMask, klWeight: 1, rng: &rng, training: false,
      computeGradients: false)
    #expect(model.network.buffers.map(\.value) == before)
    rng = SeededRandom(seed: 1)
    let b = model.network.trainStep(
      batch, batchRows: data.count, mask: model.lossMask, klWeight: 1, rng: &rng, training: true,
      computeGradients: false)
    #expect(model.network.buffers.map(\.value) != before)
    #expect(a.reconstruction != b.reconstruction)
  }

  /// Tensor names are those of the PyTorch module (Models/README.md).
  @Test func parameterNamesFollowThePyTorchModule() throws {
    let model = try tinyModel(batchNorm: true, seed: 1, decoder: .autoregressive, gruLayers: 2)
    let names = Set(model.network.allTensors.map(\.name))
    for n in [
      "encoder.conv.0.weight", "encoder.conv.1.bias", "encoder.norm.0.running_var",
      "encoder.dense.weight", "encoder.mean.bias", "encoder.logvar.weight", "decoder.norm.weight",
      "decoder.latent.weight", "decoder.embedding.weight", "decoder.gru.weight_ih_l0",
      "decoder.gru.bias_hh_l1", "decoder.output.weight",
    ] {
      #expect(names.contains(n), "missing \(n)")
    }
    let c = model.configuration
    let byName = Dictionary(uniqueKeysWithValues: model.network.allTensors.map { ($0.name, $0) })
    #expect(byName["encoder.conv.0.weight"]!.value.shape == [c.convolutions[0].filters, c.vocabularySize, c.convolutions[0].kernel])
    #expect(byName["decoder.gru.weight_ih_l0"]!.value.shape == [3 * c.gruHidden, c.decoderHidden + c.embeddingSize])
    #expect(byName["decoder.output.weight"]!.value.shape == [c.vocabularySize, c.gruHidden])
  }
}
