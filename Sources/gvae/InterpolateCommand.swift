import Engine
import ArgumentParser
import CFG
import Foundation
import GrammarVAE

struct InterpolateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "interpolate",
    abstract: "Decode points on the line between the latent means of two strings.")

  @OptionGroup var modelOption: ModelOption
  @OptionGroup var budget: LengthBudgetOption
  @Option(help: "Number of points, both ends included.") var steps: Int = 5
  @Option(help: "Sample at this temperature instead of greedy decoding.") var temperature: Float?
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Output: text or json.") var format: OutputFormat = .text
  @Argument(help: "The start string.") var start: String
  @Argument(help: "The end string.") var end: String

  func validate() throws {
    guard steps >= 2 else { throw ValidationError("--steps must be at least 2") }
    if let t = temperature, !(t > 0 && t.isFinite) {
      throw ValidationError("--temperature must be positive")
    }
  }

  func run() throws {
    let model = try modelOption.load()
    let (lengthBudget, constraint) = try budget.resolve(for: model).decoding(for: model)
    var rng = SeededRandom(seed: seed)
    let ends: [[Float]]
    do {
      ends = try model.encode([start, end], stochastic: false, rng: &rng)
    } catch {
      throw fail(error.description)
    }
    let z = (0..<steps).map { k -> [Float] in
      let a = Float(k) / Float(steps - 1)
      return zip(ends[0], ends[1]).map { (1 - a) * $0 + a * $1 }
    }
    let outputs = model.decode(
      latents: z, strategy: temperature.map { .sample(temperature: $0) } ?? .greedy, rng: &rng,
      lengthBudget: lengthBudget, constraint: constraint)
    let out = OutputBuffer()
    for (k, o) in outputs.enumerated() {
      printDecoded(
        o, number: k + 1, format: format, out: out, extra: "\"t\":\(Float(k) / Float(steps - 1))")
    }
    out.flush()
  }
}
