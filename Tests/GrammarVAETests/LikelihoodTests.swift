import CFG
import Engine
import Foundation
import Testing

@testable import GrammarVAE

/// `logLikelihoods` against the decoder it describes: the frequency with which sampled
/// decodings of one latent write a string must match exp(log p(string | z)).
@Suite struct LikelihoodTests {
  /// A tiny model whose decoder weights are scaled up, so its choices depend strongly on z,
  /// the stack and (autoregressive) the previous production: a wrong mask, a shifted
  /// previous input or a missing end character moves the probabilities far off.
  func peakedModel(
    kind: ModelKind, decoder: DecoderKind, scale: Float = 4, steps: Int? = nil
  ) throws -> VAEModel {
    let model = try tinyModel(kind: kind, seed: 7, steps: steps, decoder: decoder, gruLayers: 2)
    for p in model.network.parameters where p.name.hasPrefix("decoder.") {
      p.value.storage = p.value.storage.map { $0 * scale }
    }
    return model
  }

  func check(_ model: VAEModel, draws: Int) throws {
    var rng = SeededRandom(seed: 11)
    let z = (0..<model.configuration.latentSize).map { _ in rng.nextNormal() }
    let out = model.decode(latents: [z], decodings: draws, strategy: .sample(temperature: 1), rng: &rng)
    var counts: [String: Int] = [:]
    for o in out { if let s = o.string, !s.isEmpty { counts[s, default: 0] += 1 } }
    let top = counts.sorted { $0.value > $1.value }.prefix(4)
    #expect(top.count == 4)
    #expect(top[top.startIndex].value > draws / 50, "the model should favour some strings")
    let strings = top.map(\.key)
    let lp = try model.logLikelihoods(strings, latents: Array(repeating: z, count: strings.count))
    for (s, l) in zip(strings, lp) {
      let p = exp(l)
      let frequency = Double(counts[s]!) / Double(draws)
      let sigma = (p * (1 - p) / Double(draws)).squareRoot()
      #expect(abs(frequency - p) < 5 * sigma + 1e-4, "\(s): sampled \(frequency), exact \(p)")
    }
    // A string the sampler cannot write has probability far below any sampled one.
    let total = lp.map { exp($0) }.reduce(0, +)
    #expect(total <= 1 + 1e-9)
  }

  @Test func grammarRepeatedDecoder() throws {
    try check(try peakedModel(kind: .grammar, decoder: .repeated), draws: 20_000)
  }

  @Test func grammarAutoregressiveDecoder() throws {
    try check(try peakedModel(kind: .grammar, decoder: .autoregressive, scale: 3, steps: 40), draws: 20_000)
  }

  @Test func characterDecoder() throws {
    try check(try peakedModel(kind: .character, decoder: .autoregressive), draws: 20_000)
  }

  @Test func badStringIsAnErrorNamingIt() throws {
    let model = try tinyModel()
    let z = [Float](repeating: 0, count: model.configuration.latentSize)
    #expect(throws: ModelError.self) {
      _ = try model.logLikelihoods(["x", "x +* 1"], latents: [z, z])
    }
  }

  /// The expected reconstruction is the mean of those probabilities: with one encoding, it
  /// is in [0, 1] and matches a sampled estimate of the same protocol.
  @Test func expectedReconstructionMatchesSampledProtocol() throws {
    let model = try peakedModel(kind: .grammar, decoder: .autoregressive)
    let strings = ["x", "1", "x + 1", "sin(x)"]
    let exact = try Evaluation.expectedReconstruction(
      model: model, strings: strings, encodings: 2, seed: 3)
    let sampled = try Evaluation.reconstruction(
      model: model, strings: strings, encodings: 2, decodings: 4000, seed: 3)
    #expect(exact.expected >= 0 && exact.expected <= 1)
    #expect(exact.meanGreedy == sampled.meanGreedy)
    // 32,000 decodings: σ ≤ 0.003.
    #expect(abs(exact.expected - sampled.accuracy) < 0.015, "\(exact.expected) vs \(sampled.accuracy)")
  }
}
