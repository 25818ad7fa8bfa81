import Engine
import ArgumentParser
import CFG
import Foundation
import GrammarVAE

struct ReconstructCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "reconstruct",
    abstract: "Encode strings and decode them again (means and greedy decoding by default).")

  @OptionGroup var modelOption: ModelOption
  @OptionGroup var budget: LengthBudgetOption
  @Flag(help: "Sample z ~ q(z|x) instead of the mean.") var stochastic = false
  @Option(help: "Sample at this temperature instead of greedy decoding.") var temperature: Float?
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Output: text or json.") var format: OutputFormat = .text
  @Argument(help: "Strings (default: stdin, one per line).") var strings: [String] = []

  func validate() throws {
    if let t = temperature, !(t > 0 && t.isFinite) {
      throw ValidationError("--temperature must be positive")
    }
  }

  func run() throws {
    let model = try modelOption.load()
    let (lengthBudget, constraint) = try budget.resolve(for: model).decoding(for: model)
    var rng = SeededRandom(seed: seed)
    let strategy: DecodingStrategy = temperature.map { .sample(temperature: $0) } ?? .greedy
    let out = OutputBuffer()
    let report = ItemReporter(format: format, out: out)
    var items = InputItems(strings)
    try items.forEachBlock(256, flushing: out) { block, first in
      try forEachEncodable(block, first: first, model: model, report: report) { good in
        let z = try model.encode(good.map(\.input), stochastic: stochastic, rng: &rng)
        let outputs = model.decode(
          latents: z, strategy: strategy, rng: &rng, lengthBudget: lengthBudget, constraint: constraint)
        for (g, o) in zip(good, outputs) {
          let exact = o.string == model.codec.canonical(g.input)
          printDecoded(
            o, number: g.number, input: g.input, format: format, out: out,
            extra: "\"exact\":\(exact)")
        }
      }
    }
    try report.finish(items: items.count)
  }
}
