import Engine
import ArgumentParser
import CFG
import Foundation
import GrammarVAE

struct SampleCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "sample",
    abstract: "Sample strings from the prior: z ~ N(0, I), then masked decoding.",
    discussion: """
      Every printed string is grammar-valid by construction. The length budget (default) also \
      keeps every derivation finishable within the model's length limit; with \
      --no-length-budget a draw still unfinished at the limit is redrawn (counted on stderr) \
      unless --keep-incomplete.
      """)

  @OptionGroup var modelOption: ModelOption
  @OptionGroup var budget: LengthBudgetOption
  @Option(name: [.customShort("n"), .customLong("count")], help: "Number of strings.") var count:
    Int = 10
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Softmax temperature for Gumbel-max sampling.") var temperature: Float = 1
  @Flag(help: "Greedy decoding of each draw instead of sampling.") var greedy = false
  @Flag(
    name: .customLong("keep-incomplete"),
    help: "Print incomplete draws (as empty lines) instead of redrawing.")
  var keepIncomplete = false
  @Option(help: "Output: text or json.") var format: OutputFormat = .text

  func validate() throws {
    guard count >= 0 else { throw ValidationError("-n must be non-negative") }
    guard temperature > 0 && temperature.isFinite else {
      throw ValidationError("--temperature must be positive")
    }
  }

  func run() throws {
    let model = try modelOption.load()
    let (lengthBudget, constraint) = try budget.resolve(for: model).decoding(for: model)
    var rng = SeededRandom(seed: seed)
    let Z = model.configuration.latentSize
    var results: [DecodedString] = []
    var incomplete = 0
    var attempts = 0
    while results.count < count {
      let need = count - results.count
      attempts += need
      if attempts > 100 * max(count, 1) + 1000 {
        throw fail("gave up: \(incomplete) of \(attempts) draws were incomplete")
      }
      let z = (0..<need).map { _ in (0..<Z).map { _ in rng.nextNormal() } }
      // Split over an MPI job's ranks when there is one (every rank gets every output).
      let out = model.decodeAcrossRanks(
        latents: z, strategy: strategy(greedy: greedy, temperature: temperature), rng: &rng,
        lengthBudget: lengthBudget, constraint: constraint)
      for o in out {
        if o.string == nil {
          incomplete += 1
          if !keepIncomplete { continue }
        }
        results.append(o)
      }
    }
    if incomplete > 0 {
      printError(
        "gvae: \(incomplete) of \(attempts) draws were incomplete at the length limit"
          + (keepIncomplete ? "" : " and were redrawn"))
    }
    guard Cluster.world.isRoot else { return }
    let out = OutputBuffer()
    printDecoded(results, format: format, out: out)
    out.flush()
  }
}
