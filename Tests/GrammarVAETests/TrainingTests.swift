import CFG
import Engine
import Foundation
import Testing

@testable import GrammarVAE

@Suite struct TrainingTests {
  func settings(epochs: Int, seed: UInt64 = 5) -> TrainingSettings {
    var s = Preset.tiny.training
    s.epochs = epochs
    s.batchSize = 4
    s.seed = seed
    s.learningRate = 0.01
    s.validationFraction = 0
    s.checkpointMinutes = 1000
    return s
  }

  /// Mean teacher-forced reconstruction loss with noise-free latents.
  func reconstructionLoss(_ model: VAEModel, _ data: EncodedDataset) -> Double {
    var rng = SeededRandom(seed: 1)
    let t = model.network.trainStep(
      TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: data.steps),
      batchRows: data.count, mask: model.lossMask, klWeight: 1, rng: &rng, training: false,
      computeGradients: false)
    return t.reconstruction / Double(data.count)
  }

  @Test func tinyModelLearnsToReconstruct() throws {
    let model = try tinyModel(seed: 2, paperLoss: true)
    let data = encoded(tinyExpressions, model)
    let before = reconstructionLoss(model, data)
    let trainer = Trainer(
      model: model, settings: settings(epochs: 80), train: data, validation: data,
      outputPath: temporaryPath("tiny.safetensors"))
    #expect(try trainer.run() == .finished)
    let after = reconstructionLoss(model, data)
    #expect(after < before / 3, "reconstruction loss \(before) → \(after)")
    // Greedy decoding of the means reconstructs most of the training strings.
    var rng = SeededRandom(seed: 3)
    let z = try model.encode(tinyExpressions, stochastic: false, rng: &rng)
    let out = model.decode(latents: z, strategy: .greedy, rng: &rng)
    let hits = zip(out, tinyExpressions).filter { $0.0.string == $0.1 }.count
    #expect(hits >= tinyExpressions.count / 2, "reconstructed \(hits) of \(tinyExpressions.count)")
  }

  @Test(arguments: [ModelKind.grammar, .character])
  func resumeAfterKillGivesTheSameWeights(kind: ModelKind) throws {
    let reference = try tinyModel(kind: kind, seed: 7)
    let data = encoded(tinyExpressions, reference)
    let val = data.subset([0, 1, 2])
    let full = Trainer(
      model: reference, settings: settings(epochs: 4), train: data, validation: val,
      outputPath: temporaryPath("full.safetensors"))
    #expect(try full.run() == .finished)

    let path = temporaryPath("killed.safetensors")
    let first = Trainer(
      model: try tinyModel(kind: kind, seed: 7), settings: settings(epochs: 4), train: data,
      validation: val, outputPath: path)
    first.stopAfterEpoch = 2
    #expect(try first.run() == .stoppedAfterEpoch(2))
    // A fresh process: new model object, state only from the checkpoint.
    let second = Trainer(
      model: try tinyModel(kind: kind, seed: 99), settings: settings(epochs: 4), train: data,
      validation: val, outputPath: path)
    try second.resume()
    #expect(second.state.epoch == 2)
    #expect(try second.run() == .finished)
    for (a, b) in zip(reference.network.allTensors, second.model.network.allTensors) {
      #expect(a.value == b.value, "\(a.name) differs after resume")
    }
    #expect(full.state.history.map(\.trainLoss) == second.state.history.map(\.trainLoss))
  }

  @Test func midEpochInterruptionResumesExactly() throws {
    var settings = settings(epochs: 2)
    settings.gradientClip = 1  // exercises clipping too
    let data = encoded(tinyExpressions, try tinyModel(seed: 8))
    let reference = Trainer(
      model: try tinyModel(seed: 8), settings: settings, train: data, validation: data,
      outputPath: temporaryPath("ref.safetensors"))
    _ = try reference.run()
    let path = temporaryPath("int.safetensors")
    let first = Trainer(
      model: try tinyModel(seed: 8), settings: settings, train: data, validation: data,
      outputPath: path)
    var calls = 0
    first.shouldStop = {
      calls += 1
      return calls == 4  // like SIGINT in the middle of epoch 2
    }
    #expect(try first.run() == .interrupted)
    let second = Trainer(
      model: try tinyModel(seed: 0), settings: settings, train: data, validation: data,
      outputPath: path)
    try second.resume()
    _ = try second.run()
    for (a, b) in zip(reference.model.network.allTensors, second.model.network.allTensors) {
      #expect(a.value == b.value, "\(a.name) differs after resume")
    }
  }

  /// Word dropout: about `rate` of the positions after the first, never the first, the same
  /// mask for the same (seed, step, row) whatever else is in the batch; it changes what the
  /// autoregressive decoder is fed (so the loss), and a run with it resumes exactly.
  @Test func wordDropoutIsSeededAndResumesExactly() throws {
    let rows = Array(0..<200)
    let mask = Trainer.wordDropoutMask(rows: rows, steps: 50, rate: 0.25, seed: 3, step: 7)
    let fraction = Double(mask.filter { $0 }.count) / Double(200 * 49)
    #expect(abs(fraction - 0.25) < 0.02, "\(fraction)")
    #expect((0..<200).allSatisfy { !mask[$0 * 50] })
    let alone = Trainer.wordDropoutMask(rows: [57], steps: 50, rate: 0.25, seed: 3, step: 7)
    #expect(Array(mask[(57 * 50)..<(58 * 50)]) == alone)
    #expect(Trainer.wordDropoutMask(rows: [57], steps: 50, rate: 0.25, seed: 3, step: 8) != alone)

    let model = try tinyModel(seed: 8, decoder: .autoregressive)
    let data = encoded(tinyExpressions, model)
    let batch = TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: data.steps)
    var dropped = batch
    dropped.dropped = [Bool](repeating: true, count: data.count * data.steps)
    func loss(_ b: TrainingBatch) -> Double {
      var rng = SeededRandom(seed: 1)
      return model.network.trainStep(
        b, batchRows: b.rows, mask: model.lossMask, klWeight: 1, rng: &rng, training: false, computeGradients: false
      ).reconstruction
    }
    #expect(loss(batch) != loss(dropped))

    var settings = settings(epochs: 2)
    settings.wordDropout = 0.3
    try expectRegulariserChangesTrainingAndResumesExactly(settings, data: data, name: "wd")
  }

  /// Decoder dropout: about `rate` of the GRU outputs zeroed and the rest scaled by
  /// 1/(1 − rate), the same mask for the same (seed, step, row) whatever else is in the batch;
  /// it changes the training loss only in training (validation and decoding never see it), on
  /// both decoders, and a run with it resumes exactly.
  @Test func decoderDropoutIsSeededTrainingOnlyAndResumesExactly() throws {
    let rows = Array(0..<40)
    let mask = Trainer.decoderDropoutMask(rows: rows, steps: 30, width: 16, rate: 0.2, seed: 3, step: 7)
    let zeros = Double(mask.filter { $0 == 0 }.count) / Double(mask.count)
    #expect(abs(zeros - 0.2) < 0.02, "\(zeros)")
    #expect(mask.allSatisfy { $0 == 0 || $0 == 1 / (1 - Float(0.2)) })
    let alone = Trainer.decoderDropoutMask(rows: [17], steps: 30, width: 16, rate: 0.2, seed: 3, step: 7)
    #expect(Array(mask[(17 * 30 * 16)..<(18 * 30 * 16)]) == alone)
    #expect(Trainer.decoderDropoutMask(rows: [17], steps: 30, width: 16, rate: 0.2, seed: 3, step: 8) != alone)

    for decoder in [DecoderKind.repeated, .autoregressive] {
      let model = try tinyModel(seed: 8, decoder: decoder)
      let data = encoded(tinyExpressions, model)
      let batch = TrainingBatch(sequences: data.sequences, rows: data.count, decoderSteps: data.steps)
      var masked = batch
      masked.stateMask = Trainer.decoderDropoutMask(
        rows: Array(0..<data.count), steps: data.steps, width: model.configuration.gruHidden, rate: 0.5, seed: 1,
        step: 0)
      func loss(_ b: TrainingBatch, training: Bool) -> Double {
        var rng = SeededRandom(seed: 1)
        return model.network.trainStep(
          b, batchRows: b.rows, mask: model.lossMask, klWeight: 1, rng: &rng, training: training,
          computeGradients: false
        ).reconstruction
      }
      #expect(loss(batch, training: true) != loss(masked, training: true), "\(decoder)")
      #expect(loss(batch, training: false) == loss(masked, training: false), "\(decoder)")
    }

    let data = encoded(tinyExpressions, try tinyModel(seed: 8, decoder: .autoregressive))
    var settings = settings(epochs: 2)
    settings.decoderDropout = 0.3
    try expectRegulariserChangesTrainingAndResumesExactly(settings, data: data, name: "dd")
  }

  /// A regularised run (autoregressive tiny model) trains differently from the same run
  /// without it (`plain`: the regulariser's setting removed), and one interrupted after 4
  /// steps and resumed ends with exactly the weights of the uninterrupted run.
  func expectRegulariserChangesTrainingAndResumesExactly(
    _ settings: TrainingSettings, data: EncodedDataset, name: String, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    func trainer(_ s: TrainingSettings, seed: UInt64, _ path: String) throws -> Trainer {
      Trainer(
        model: try tinyModel(seed: seed, decoder: .autoregressive), settings: s, train: data, validation: data,
        outputPath: path)
    }
    let reference = try trainer(settings, seed: 8, temporaryPath("\(name)-ref.safetensors"))
    _ = try reference.run()
    var plain = settings
    plain.wordDropout = nil
    plain.decoderDropout = nil
    let without = try trainer(plain, seed: 8, temporaryPath("\(name)-plain.safetensors"))
    _ = try without.run()
    #expect(
      reference.state.history.map(\.trainLoss) != without.state.history.map(\.trainLoss), sourceLocation: sourceLocation)
    let path = temporaryPath("\(name)-int.safetensors")
    let first = try trainer(settings, seed: 8, path)
    var calls = 0
    first.shouldStop = {
      calls += 1
      return calls == 4
    }
    #expect(try first.run() == .interrupted, sourceLocation: sourceLocation)
    let second = try trainer(settings, seed: 0, path)
    try second.resume()
    _ = try second.run()
    for (a, b) in zip(reference.model.network.allTensors, second.model.network.allTensors) {
      #expect(a.value == b.value, "\(a.name) differs after resume", sourceLocation: sourceLocation)
    }
  }

  @Test func nonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
    let model = try tinyModel(seed: 3)
    let data = encoded(tinyExpressions, model)
    let trainer = Trainer(
      model: model, settings: settings(epochs: 5), train: data, validation: data,
      outputPath: temporaryPath("nan.safetensors"))
    trainer.injectNonFiniteAtStep = 7  // epoch 3 (3 batches per epoch)
    #expect(throws: TrainingError.self) { try trainer.run() }
    let resumed = Trainer(
      model: try tinyModel(seed: 3), settings: settings(epochs: 5), train: data, validation: data,
      outputPath: trainer.outputPath)
    try resumed.resume()
    #expect(resumed.state.epoch == 2)
    // Resumed without the injected fault, the run goes on to its last epoch.
    _ = try resumed.run()
    #expect(resumed.state.epoch == 5)
    #expect(resumed.state.history.count == 5)
  }

  @Test func hugeLearningRateIsCaughtByTheGuard() throws {
    let model = try tinyModel(seed: 3)
    let data = encoded(tinyExpressions, model)
    var s = settings(epochs: 50)
    s.learningRate = 1e30
    let trainer = Trainer(
      model: model, settings: s, train: data, validation: data,
      outputPath: temporaryPath("huge.safetensors"))
    let error = #expect(throws: TrainingError.self) { _ = try trainer.run() }
    #expect(error?.description.contains("NaN or infinite") == true)
    // The guard stops before the optimiser applies a non-finite step.
    for p in model.network.parameters {
      #expect(p.value.storage.allSatisfy { $0.isFinite }, "\(p.name)")
    }
  }

  @Test func batchesAreSeededAndBucketed() throws {
    let model = try tinyModel(seed: 1)
    let data = encoded(tinyExpressions + tinyExpressions, model)
    var s = settings(epochs: 1)
    s.bucketBatches = 3
    let t = Trainer(model: model, settings: s, train: data, validation: data, outputPath: "/tmp/x")
    #expect(t.batches(epoch: 0) == t.batches(epoch: 0))
    #expect(t.batches(epoch: 0) != t.batches(epoch: 1))
    #expect(t.batches(epoch: 0).flatMap { $0 }.sorted() == Array(0..<data.count))
  }
}

@Suite struct DecodingTests {
  /// Any mask-respecting decoding of random latents from an untrained model is grammar-valid
  /// or reported incomplete; completed outputs always parse.
  @Test(arguments: [UInt64(1), 2, 3])
  func decodingIsGrammarValidByConstruction(seed: UInt64) throws {
    let model = try tinyModel(seed: seed)
    var rng = SeededRandom(seed: seed)
    let z = (0..<40).map { _ in
      (0..<model.configuration.latentSize).map { _ in Float.random(in: -3...3, using: &rng) }
    }
    let parser = Parser(grammar: model.grammar)
    for strategy in [DecodingStrategy.greedy, .sample(temperature: 1), .sample(temperature: 3)] {
      let out = model.decode(latents: z, decodings: 5, strategy: strategy, rng: &rng)
      #expect(out.count == 200)
      for o in out {
        if case .string(let s) = o {
          #expect((try? parser.parse(s)) != nil, "seed \(seed): '\(s)' does not parse")
          #expect(try parser.parse(s).count <= 15)
        }
      }
    }
  }

  /// The length budget never leaves an output incomplete, even for an untrained model at a
  /// hot temperature and a tight limit, and every output still parses within the limit.
  @Test(arguments: [(UInt64(1), 15), (2, 15), (3, 9)])
  func lengthBudgetFinishesEveryDerivation(seed: UInt64, steps: Int) throws {
    let model = try tinyModel(seed: seed, steps: steps)
    var rng = SeededRandom(seed: seed)
    let z = (0..<40).map { _ in
      (0..<model.configuration.latentSize).map { _ in Float.random(in: -3...3, using: &rng) }
    }
    let parser = Parser(grammar: model.grammar)
    var unbudgetedIncomplete = 0
    for strategy in [DecodingStrategy.greedy, .sample(temperature: 1), .sample(temperature: 5)] {
      let out = model.decode(
        latents: z, decodings: 5, strategy: strategy, rng: &rng, lengthBudget: true)
      #expect(out.count == 200)
      for o in out {
        let s = try #require(o.string, "seed \(seed): incomplete output with the length budget")
        #expect(try parser.parse(s).count <= steps, "'\(s)' is longer than \(steps) steps")
      }
      unbudgetedIncomplete += model.decode(
        latents: z, decodings: 5, strategy: strategy, rng: &rng
      ).filter { $0.string == nil }.count
    }
    // The check above is not vacuous: without the budget some of these draws do not finish.
    if steps < 15 { #expect(unbudgetedIncomplete > 0) }
  }

  @Test func modelFileRoundTripAndGrammarMismatch() throws {
    let model = try tinyModel(seed: 4)
    let path = temporaryPath("m.safetensors")
    try model.save(to: path)
    let loaded = try VAEModel.load(path: path, expectedGrammar: try equationGrammar())
    #expect(loaded.configuration == model.configuration)
    for (a, b) in zip(model.network.allTensors, loaded.network.allTensors) {
      #expect(a.value == b.value)
    }
    #expect(throws: ModelError.self) {
      try VAEModel.load(path: path, expectedGrammar: try Grammar.named("zinc"))
    }
    // F16 storage: half the size, values within F16 rounding.
    let half = temporaryPath("h.safetensors")
    try model.save(to: half, half: true)
    let h = try VAEModel.load(path: half)
    for (a, b) in zip(model.network.allTensors, h.network.allTensors) {
      for (x, y) in zip(a.value.storage, b.value.storage) {
        #expect(abs(x - y) <= 1e-3 * max(1, abs(x)))
      }
    }
    // Corrupt files are errors, not crashes.
    try Data("garbage".utf8).write(to: URL(fileURLWithPath: path))
    #expect(throws: ModelError.self) { try VAEModel.load(path: path) }
    var bytes = try Data(contentsOf: URL(fileURLWithPath: half))
    bytes = bytes.prefix(bytes.count / 2)
    try bytes.write(to: URL(fileURLWithPath: path))
    #expect(throws: ModelError.self) { try VAEModel.load(path: path) }
  }

  @Test func characterCodecRoundTrip() throws {
    let model = try tinyModel(kind: .character)
    let (seq, n) = try model.codec.encode("sin(x + 1)")
    #expect(n == 8)
    #expect(model.codec.characterString(seq) == "sin(x+1)")
    #expect(throws: SequenceError.self) { try model.codec.encode("x + y") }
  }
}
