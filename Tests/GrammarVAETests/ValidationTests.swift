// Bad sizes, grammars, checkpoints and text lines: clear errors before any allocation.
import CFG
import Engine
import Foundation
import Testing

@testable import GrammarVAE

@Suite struct ValidationTests {
  func base() throws -> ModelConfiguration { try tinyModel().configuration }

  @Test func absurdAndInconsistentSizesAreRejected() throws {
    let cases: [(String, (inout ModelConfiguration) -> Void)] = [
      ("steps must be in", { $0.steps = 0 }),
      ("steps must be in", { $0.steps = .max }),
      ("vocabulary size must be in", { $0.vocabularySize = 1 << 40 }),
      ("GRU hidden must be in", { $0.gruHidden = 1_000_000_000 }),
      ("GRU layers must be in", { $0.gruLayers = -1 }),
      ("latent size must be in", { $0.latentSize = .min }),
      ("convolution 0", { $0.convolutions[0].kernel = .max }),
      ("convolution 1", { $0.convolutions[1].filters = 0 }),
      ("needs 1...16 convolutions", { $0.convolutions = [] }),
      ("embedding size", { $0.decoder = .autoregressive; $0.embeddingSize = 0 }),
      ("epsilon", { $0.epsilonStd = .nan }),
      // Every size within its bound, the product far too large.
      ("more than", {
        $0.steps = 10_000; $0.vocabularySize = 100_000
        $0.convolutions = [ConvSpec(filters: 16_384, kernel: 1)]
      }),
    ]
    for (text, edit) in cases {
      var c = try base()
      edit(&c)
      let error = #expect(throws: ModelError.self) { try c.validate() }
      #expect(error?.description.contains(text) == true, "\(text): \(String(describing: error))")
    }
    #expect(try base().parameterCount == tinyModel().network.allTensors.reduce(0) { $0 + $1.value.count })
  }

  @Test func grammarWithoutPaddingCannotMakeAModel() throws {
    let g = try Grammar(text: "S -> S '+' T | T\nT -> 'x' | '1'\n", name: "nopad.cfg")
    #expect(g.paddingProduction == -1)
    #expect(throws: ParseError.noPadding) { try g.encode("x+1", maxLength: 10) }
    // Exactly full length needs no padding.
    let full = try g.parse("x+1")
    #expect(try g.padded(full, to: full.count).count == full.count)
    let batch = g.encodeAll(["x+1", "1"], maxLength: 10)
    #expect(batch.failures.map(\.error) == [.noPadding, .noPadding])
    #expect(batch.indices.allSatisfy { $0 >= 0 })
    var c = Preset.tiny.configuration(kind: .grammar, steps: 10, vocabularySize: g.productions.count)
    c.decoder = .repeated
    let error = #expect(throws: ModelError.self) {
      _ = try VAEModel(configuration: c, grammar: g, grammarText: "", seed: 0)
    }
    #expect(error?.description.contains("no empty production") == true)
  }

  @Test func impossibleCheckpointCountersAreRejected() throws {
    let model = try tinyModel()
    let data = encoded(tinyExpressions, model)
    var settings = Preset.tiny.training
    settings.batchSize = 4
    let trainer = Trainer(
      model: model, settings: settings, train: data, validation: data, outputPath: "/tmp/unused")
    try trainer.check(trainer.state)
    let edits: [(String, (inout TrainerState) -> Void)] = [
      ("epoch is -3", { $0.epoch = -3 }),
      ("batch is -1", { $0.batchInEpoch = -1 }),
      ("batch 99 of an epoch of 3 batches", { $0.batchInEpoch = 99 }),
      ("learning rate", { $0.learningRate = -1 }),
      ("epochs of history", {
        $0.history = [EpochRecord](
          repeating: EpochRecord(
            epoch: 0, step: 0, trainLoss: 0, trainReconstruction: 0, trainKL: 0,
            validationLoss: nil, validationReconstruction: nil, learningRate: 1, seconds: 0,
            rowsPerSecond: 0), count: 2)
      }),
      ("elapsed", { $0.elapsed = .infinity }),
      ("Adam step", { $0.adamStep = .min }),
    ]
    for (text, edit) in edits {
      var s = trainer.state
      edit(&s)
      let error = #expect(throws: TrainingError.self) { try trainer.check(s) }
      #expect(error?.description.contains(text) == true, "\(text): \(String(describing: error))")
    }
  }

  @Test func latentAndIndexLines() throws {
    #expect(try parseLatentVector("[1, 2.5\t-3]", size: 3) == [1, 2.5, -3])
    for (line, text) in [
      ("1 2", "got 2"), ("1 2 3 4", "got more"), ("1 inf 2", "\"inf\" is not a finite number"),
      ("", "got 0"), ("[", "\"[\" is not a finite number"),
    ] {
      let error = #expect(throws: LatentLineError.self) { try parseLatentVector(line, size: 3) }
      #expect(error?.message.contains(text) == true, "\(line): \(String(describing: error))")
    }
    // A million numbers on one line: parsing stops after size + 1.
    let long = String(repeating: "1 ", count: 1_000_000)
    #expect(throws: LatentLineError(message: "expected 3 numbers (the model's latent size), got more")) {
      try parseLatentVector(long, size: 3)
    }
    #expect(try parseProductionIndices("0 1,2\t3") == [0, 1, 2, 3])
    #expect(throws: IndexLineError(message: "empty sequence")) { try parseProductionIndices("  ") }
    #expect(throws: IndexLineError(message: "\"9999999999999999999999\" is not a production index")) {
      try parseProductionIndices("0 9999999999999999999999")
    }
  }
}
