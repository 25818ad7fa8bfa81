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
    var items = InputItems(sequences)
    while let line = items.next() {
      let k = items.count - 1
      let seq: [Int]
      do throws(IndexLineError) {
        seq = try parseProductionIndices(line)
      } catch {
        out.flush()
        throw fail("line \(k + 1): \(error.message)")
      }
      do {
        out.write(try grammar.derive(seq, separator: sep) + "\n")
        if items.count % 256 == 0 { out.flush() }
      } catch {
        out.flush()
        throw fail("line \(k + 1): \(error)")
      }
    }
    out.flush()
  }
}
