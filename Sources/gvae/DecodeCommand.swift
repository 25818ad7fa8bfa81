import Engine
import ArgumentParser
import CFG
import Foundation
import GrammarVAE

struct DecodeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "decode",
    abstract: "Decode latent vectors to strings with masked stack decoding.",
    discussion: """
      Reads vectors (numbers separated by spaces or commas) from the arguments or stdin, one \
      per line. Greedy by default; --temperature samples with Gumbel-max. An output that is \
      still unfinished at the length limit prints an empty line and a note on stderr.
      """)

  @OptionGroup var modelOption: ModelOption
  @OptionGroup var budget: LengthBudgetOption
  @Option(help: "Output: text or json.") var format: OutputFormat = .text
  @Option(help: "Sample at this temperature instead of greedy decoding.") var temperature: Float?
  @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
  @Argument(help: "Vectors (default: stdin, one per line).") var vectors: [String] = []

  func validate() throws {
    if let t = temperature, !(t > 0 && t.isFinite) {
      throw ValidationError("--temperature must be positive")
    }
  }

  func run() throws {
    let model = try modelOption.load()
    let (lengthBudget, constraint) = try budget.resolve(for: model).decoding(for: model)
    let Z = model.configuration.latentSize
    var rng = SeededRandom(seed: seed)
    let strategy: DecodingStrategy = temperature.map { .sample(temperature: $0) } ?? .greedy
    let out = OutputBuffer()
    let report = ItemReporter(format: format, out: out)
    var items = InputItems(vectors)
    while true {
      let first = items.count + 1
      let block = items.nextBlock(256)
      if block.isEmpty { break }
      // Decode the good vectors up to each bad one, so output stays in input order.
      var pending: [(number: Int, z: [Float])] = []
      func flushPending() {
        let outputs = model.decode(
          latents: pending.map(\.z), strategy: strategy, rng: &rng,
          lengthBudget: lengthBudget, constraint: constraint)
        for (p, o) in zip(pending, outputs) {
          printDecoded(o, number: p.number, format: format, out: out)
        }
        pending.removeAll()
      }
      for (k, line) in block.enumerated() {
        do throws(LatentLineError) {
          pending.append((first + k, try parseLatentVector(line, size: Z)))
        } catch {
          flushPending()
          try report.report(line: first + k, input: line, message: error.message)
        }
      }
      flushPending()
      out.flush()
    }
    try report.finish(items: items.count)
  }
}
