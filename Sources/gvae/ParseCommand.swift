import ArgumentParser
import CFG
import Foundation
import NN

struct ParseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "parse",
    abstract: "Parse strings into production-index sequences (leftmost derivations).",
    discussion: """
      With no strings, reads one per line from stdin. Text formats stop at the first bad \
      line with a message naming its line and column and exit 1; --format json reports \
      every line (errors as {"error": {"line", "column", "message"}}) and exits 0. \
      --max-len (or --pad) also rejects derivations longer than the maximum length.
      """)

  enum Format: String, ExpressibleByArgument, CaseIterable {
    case indices, rules, json
  }

  @OptionGroup var grammarOption: GrammarOption

  @Option(
    help: "Output: indices (one line per input), rules (productions), json (one object per line).")
  var format: Format = .indices

  @Option(name: .customLong("max-len"), help: "Maximum derivation length (default: the grammar's).")
  var maxLength: Int?

  @Flag(help: "Pad each sequence with the padding production to the maximum length.")
  var pad = false

  @Flag(
    name: .customLong("report-ambiguity"),
    help: "Report inputs with more than one parse tree (stderr; json: \"ambiguous\").")
  var reportAmbiguity = false

  @Argument(help: "Strings to parse (default: stdin, one per line).")
  var strings: [String] = []

  func validate() throws {
    if let m = maxLength, m < 1 { throw ValidationError("--max-len must be at least 1") }
  }

  func run() throws {
    let grammar = try grammarOption.load()
    if pad && grammar.paddingProduction < 0 {
      throw fail(
        "--pad: grammar \(grammar.name) has no empty production to pad with "
          + "(add a rule such as Nothing -> None)")
    }
    var items = InputItems(strings)
    let limit: Int? = (pad || maxLength != nil) ? (maxLength ?? grammar.maxLength) : nil
    let out = OutputBuffer()
    var ambiguousCount = 0
    var failures = 0
    while true {
      let start = items.count
      let lines = items.nextBlock(4096)
      if lines.isEmpty { break }
      let results = parseBlock(lines, grammar: grammar)
      for (k, result) in results.enumerated() {
        let lineNumber = start + k + 1
        let input = lines[k]
        var outcome = result
        if case .success(let r) = outcome, let limit, r.productions.count > limit {
          outcome = .failure(.tooLong(length: r.productions.count, maxLength: limit))
        }
        switch outcome {
        case .success(let r):
          var seq = r.productions
          if pad, let limit {
            seq += Array(repeating: grammar.paddingProduction, count: limit - seq.count)
          }
          if r.isAmbiguous {
            ambiguousCount += 1
            if reportAmbiguity && format != .json {
              printError("line \(lineNumber): ambiguous; showing the first parse")
            }
          }
          switch format {
          case .indices:
            out.writeIndices(seq)
          case .rules:
            for p in seq { out.write("\(p)\t\(grammar.productions[p])\n") }
            out.write("\n")
          case .json:
            var line = "{\"input\": \(jsonString(input)), \"productions\": ["
            line += seq.map(String.init).joined(separator: ", ") + "]"
            if reportAmbiguity { line += ", \"ambiguous\": \(r.isAmbiguous)" }
            out.write(line + "}\n")
          }
        case .failure(let error):
          let column = error.location?.column ?? 0
          failures += 1
          if format == .json {
            out.write(
              "{\"input\": \(jsonString(input)), \"error\": {\"line\": \(lineNumber), "
                + "\"column\": \(column), \"message\": \(jsonString(error.message))}}\n")
          } else {
            out.flush()
            let at = error.location.map { ", column \($0.column)" } ?? ""
            throw fail("line \(lineNumber)\(at): \(error.message)  [input: \(input)]")
          }
        }
      }
      out.flush()
    }
    out.flush()
    if reportAmbiguity {
      printError("\(ambiguousCount) of \(items.count) inputs ambiguous")
    }
    if failures > 0 { throw fail("\(failures) of \(items.count) inputs failed (see their \"error\")") }
  }

  func parseBlock(_ lines: [String], grammar: Grammar) -> [Result<ParseResult, ParseError>] {
    let chunk = 2048
    let chunks = (lines.count + chunk - 1) / chunk
    let box = Slots<[Result<ParseResult, ParseError>]>(count: chunks)
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
      let parser = Parser(grammar: grammar)
      var local: [Result<ParseResult, ParseError>] = []
      for i in (c * chunk)..<min(lines.count, (c + 1) * chunk) {
        do throws(ParseError) {
          local.append(.success(try parser.parseReportingAmbiguity(lines[i])))
        } catch {
          local.append(.failure(error))
        }
      }
      box.set(c, local)
    }
    return box.values.flatMap { $0 ?? [] }
  }
}

/// Slots filled by concurrent workers, one each.
final class Slots<T>: @unchecked Sendable {
  private var storage: [T?]
  private let lock = NSLock()
  init(count: Int) { storage = Array(repeating: nil, count: count) }
  func set(_ i: Int, _ v: T) {
    lock.lock()
    storage[i] = v
    lock.unlock()
  }
  var values: [T?] {
    lock.lock()
    defer { lock.unlock() }
    return storage
  }
}
