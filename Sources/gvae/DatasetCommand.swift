import Engine
import ArgumentParser
import CFG
import Foundation

struct DatasetCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dataset",
    abstract: "Make data sets.",
    subcommands: [Generate.self])

  struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write distinct random grammar-valid strings, one per line.")

    @OptionGroup var grammarOption: GrammarOption

    @Option(name: .short, help: "How many distinct strings.")
    var n: Int = 1000

    @Option(
      name: .customLong("max-len"),
      help: "Most derivation steps per string (default: the grammar's).")
    var maxLength: Int?

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(
      name: .customLong("termination-bias"),
      help: "Probability of taking the production that finishes soonest at each step (0...1).")
    var terminationBias: Double = 0.1

    @Option(name: .shortAndLong, help: "Output file (default: stdout).")
    var output: String?

    func validate() throws {
      if n < 0 { throw ValidationError("-n must not be negative") }
      if let m = maxLength, m < 1 { throw ValidationError("--max-len must be at least 1") }
      if !(0...1).contains(terminationBias) {
        throw ValidationError("--termination-bias must be between 0 and 1")
      }
    }

    func run() throws {
      let grammar = try grammarOption.load()
      var rng = SeededRandom(seed: seed)
      let strings: [String]
      do {
        strings = try grammar.randomStrings(
          count: n, maxLength: maxLength ?? grammar.maxLength, terminationBias: terminationBias,
          using: &rng)
      } catch {
        throw fail(error.description)
      }
      let text = strings.map { $0 + "\n" }.joined()
      if let output {
        do {
          try Data(text.utf8).write(to: URL(fileURLWithPath: output))
        } catch {
          throw fail("cannot write \(output): \(error.localizedDescription)")
        }
      } else {
        FileHandle.standardOutput.write(Data(text.utf8))
      }
    }
  }
}
