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
    let lines = inputLines(strings)
    var rng = SeededRandom(seed: seed)
    let out = OutputBuffer()
    let block = 1024
    var start = 0
    while start < lines.count {
      let part = Array(lines[start..<min(lines.count, start + block)])
      let z: [[Float]]
      do {
        z = try model.encode(part, stochastic: stochastic, rng: &rng)
      } catch {
        out.flush()
        throw fail(reindexed(error.description, offset: start))
      }
      for (k, v) in z.enumerated() {
        switch format {
        case .text: out.write(formatVector(v) + "\n")
        case .json: out.write("{\"input\":\(jsonString(part[k])),\"z\":\(jsonVector(v))}\n")
        }
      }
      start += block
    }
    out.flush()
  }
}

/// Rewrites "input N" in a message to count from the start of the whole input.
func reindexed(_ message: String, offset: Int) -> String {
  guard offset > 0, message.hasPrefix("input "),
    let end = message.dropFirst(6).firstIndex(where: { !$0.isNumber }),
    let n = Int(message[message.index(message.startIndex, offsetBy: 6)..<end])
  else { return message }
  return "input \(n + offset)" + message[end...]
}
