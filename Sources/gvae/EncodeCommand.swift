import Engine
import ArgumentParser
import CFG
import Foundation
import GrammarVAE
import NN

struct EncodeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "encode",
    abstract: "Encode strings to latent vectors (posterior means; --stochastic samples q(z|x)).",
    discussion: "With no strings, reads one per line from stdin. Prints one vector per line.")

  @OptionGroup var modelOption: ModelOption
  @Option(help: "Output: text (numbers separated by spaces) or json.") var format: OutputFormat =
    .text
  @Flag(help: "Sample z ~ q(z|x) instead of printing the mean.") var stochastic = false
  @Option(help: "Random seed for --stochastic.") var seed: UInt64 = 0
  @Argument(help: "Strings to encode (default: stdin, one per line).") var strings: [String] = []

  func run() throws {
    let model = try modelOption.load()
    var rng = SeededRandom(seed: seed)
    let out = OutputBuffer()
    let report = ItemReporter(format: format, out: out)
    var items = InputItems(strings)
    try items.forEachBlock(256, flushing: out) { block, first in
      try forEachEncodable(block, first: first, model: model, report: report) { good in
        let z = try model.encode(good.map(\.input), stochastic: stochastic, rng: &rng)
        for (g, v) in zip(good, z) {
          switch format {
          case .text: out.write(formatVector(v) + "\n")
          case .json: out.write("{\"input\":\(jsonString(g.input)),\"z\":\(jsonVector(v))}\n")
          }
        }
      }
    }
    try report.finish(items: items.count)
  }
}

/// Runs `body` on the runs of strings of a block that encode, reporting each one that does
/// not in its place (so results keep the input order and good ones before a bad one print).
func forEachEncodable(
  _ block: [String], first: Int, model: VAEModel, report: ItemReporter,
  _ body: ([(number: Int, input: String)]) throws -> Void
) throws {
  var good: [(number: Int, input: String)] = []
  for (k, s) in block.enumerated() {
    do throws(SequenceError) {
      _ = try model.codec.encode(s)
      good.append((first + k, s))
    } catch {
      if !good.isEmpty { try body(good) }
      good.removeAll()
      try report.report(line: first + k, input: s, message: error.description)
    }
  }
  if !good.isEmpty { try body(good) }
}
