import ArgumentParser
import CFG
import Foundation

struct DeriveCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "derive",
    abstract: "Turn production-index sequences back into strings.",
    discussion: """
      Each sequence is one line of space-separated production indices (from the \
      arguments, or stdin one per line); trailing padding is allowed. An incomplete \
      sequence is an error, never a truncated string.
      """)

  @OptionGroup var grammarOption: GrammarOption

  @Flag(help: "Join terminals without spaces (expressions: 1/3+x rather than 1 / 3 + x).")
  var compact = false

  @Option(help: "Join terminals with this text (default: the grammar's separator).")
  var separator: String?

  @Argument(help: "Index sequences (default: stdin, one per line).")
  var sequences: [String] = []

  func validate() throws {
    if compact && separator != nil {
      throw ValidationError("use --compact or --separator, not both")
    }
  }

  func run() throws {
    let grammar = try grammarOption.load()
    let sep = compact ? "" : (separator ?? grammar.separator)
    let out = OutputBuffer()
    for (k, line) in inputLines(sequences).enumerated() {
      var seq: [Int] = []
      for field in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }) {
        guard let p = Int(field) else {
          out.flush()
          throw fail("line \(k + 1): \(String(field).debugDescription) is not a production index")
        }
        seq.append(p)
      }
      if seq.isEmpty {
        out.flush()
        throw fail("line \(k + 1): empty sequence")
      }
      do {
        out.write(try grammar.derive(seq, separator: sep) + "\n")
      } catch {
        out.flush()
        throw fail("line \(k + 1): \(error)")
      }
    }
    out.flush()
  }
}
