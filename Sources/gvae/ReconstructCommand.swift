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
    let lines = inputLines(strings)
    var rng = SeededRandom(seed: seed)
    let z: [[Float]]
    do {
      z = try model.encode(lines, stochastic: stochastic, rng: &rng)
    } catch {
      throw fail(error.description)
    }
    let outputs = model.decode(
      latents: z, strategy: temperature.map { .sample(temperature: $0) } ?? .greedy, rng: &rng,
      lengthBudget: budget.lengthBudget)
    let out = OutputBuffer()
    let canon = lines.map { model.codec.canonical($0) }
    printDecoded(outputs, inputs: lines, format: format, out: out) { i in
      "\"exact\":\(outputs[i].string == canon[i])"
    }
    out.flush()
  }
}
