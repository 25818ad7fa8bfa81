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
    let lines = inputLines(vectors)
    let Z = model.configuration.latentSize
    var z: [[Float]] = []
    for (i, l) in lines.enumerated() { z.append(try parseVector(l, size: Z, lineNumber: i + 1)) }
    var rng = SeededRandom(seed: seed)
    let outputs = model.decode(
      latents: z, strategy: temperature.map { .sample(temperature: $0) } ?? .greedy, rng: &rng,
      lengthBudget: budget.lengthBudget)
    let out = OutputBuffer()
    printDecoded(outputs, format: format, out: out)
    out.flush()
  }
}
