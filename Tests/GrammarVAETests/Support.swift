import CFG
import Foundation

@testable import GrammarVAE

/// A handful of expressions for tiny models.
let tinyExpressions = [
  "x", "1", "x + 1", "sin(x)", "x * x", "exp(x)", "x / 2", "3 * x", "sin(x + 1)",
  "x + x + 1", "exp(2)", "x * 3",
]

func equationGrammar() throws -> Grammar { try Grammar.named("equation") }

func tinyModel(
  kind: ModelKind = .grammar, batchNorm: Bool = false, seed: UInt64 = 1, steps: Int? = nil,
  paperLoss: Bool = false, decoder: DecoderKind = .repeated, gruLayers: Int? = nil
) throws -> VAEModel {
  let g = try equationGrammar()
  var c: ModelConfiguration
  if kind == .grammar {
    c = Preset.tiny.configuration(
      kind: .grammar, steps: steps ?? 15, vocabularySize: g.productions.count)
  } else {
    let chars = SequenceCodec.characterVocabulary(tinyExpressions, stripWhitespace: true)
    c = Preset.tiny.configuration(kind: .character, steps: steps ?? 19, vocabularySize: chars.count)
    c.characters = chars
    c.stripWhitespace = true
  }
  if paperLoss {
    c.epsilonStd = 0.01
    c.klAveraged = true
  }
  c.decoder = decoder
  if decoder == .autoregressive { c.embeddingSize = 5 }
  if let gruLayers { c.gruLayers = gruLayers }
  c.convolutionBatchNorm = batchNorm
  c.latentBatchNorm = batchNorm
  return try VAEModel(
    configuration: c, grammar: g, grammarText: ShippedGrammar.all[1].text, seed: seed)
}

func encoded(_ strings: [String], _ model: VAEModel) -> EncodedDataset {
  EncodedDataset(
    lines: strings.enumerated().map { ($0.offset + 1, $0.element) }, codec: model.codec, threads: 1)
}

func temporaryPath(_ name: String) -> String {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
    "gvae-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
  try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  return dir.appendingPathComponent(name).path
}
