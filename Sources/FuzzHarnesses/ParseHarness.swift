// Parsing strings with a grammar: the parse must agree with the tokenizer, derive the tokens
// back, re-parse to itself and drive the stack decoder to completion.
import CFG
import Foundation

/// The parse checks for one grammar, with a parser reused across inputs as the tool does
/// (stale scratch state from an earlier input is one of the bugs this looks for).
final class ParseHarness: @unchecked Sendable {
  // Fuzzing and replay are single-threaded; the lock covers tests run in parallel.
  let lock = NSLock()
  let name: String
  let grammar: Grammar
  let parser: Parser

  init(name: String, grammar: String) {
    self.name = name
    do { self.grammar = try Grammar.named(grammar) } catch {
      fatalError("shipped grammar \(grammar) does not load: \(error)")
    }
    parser = Parser(grammar: self.grammar)
  }

  static let zinc = ParseHarness(name: "zinc-parse", grammar: "zinc")
  static let equation = ParseHarness(name: "equation-parse", grammar: "equation")
  static let zincRR = ParseHarness(name: "zinc-rr-parse", grammar: "zinc-rr")

  func run(_ data: Data) throws(HarnessFailure) {
    lock.lock()
    defer { lock.unlock() }
    // The tool decodes its text files as UTF-8; replacement characters are inputs too.
    try ParseHarness.check(String(decoding: data, as: UTF8.self), grammar, parser, name)
  }

  /// Every property of one parse; shared with the grammar-file harness.
  static func check(_ input: String, _ g: Grammar, _ parser: Parser, _ name: String)
    throws(HarnessFailure)
  {
    var tokens: [Token]? = nil
    var tokenError: ParseError? = nil
    do { tokens = try g.tokenize(input) } catch { tokenError = error }
    let derivation: [Int]
    do {
      derivation = try parser.parse(input)
    } catch {
      try checkError(error, input: input, tokenError: tokenError, g, name)
      return
    }
    guard let tokens else {
      throw fail(name, "parse succeeded but tokenize failed: \(tokenError!.summary)")
    }
    let expected = tokens.map { g.terminals[$0.terminal] }
    let terminals: [String]
    do { terminals = try g.derivedTerminals(derivation) } catch {
      throw fail(name, "the parse's derivation does not derive: \(error)")
    }
    guard terminals == expected else {
      throw fail(
        name, "round trip: derivation gives \(terminals.count) terminals \(terminals.prefix(20)),"
          + " tokens were \(expected.count) \(expected.prefix(20))")
    }
    let derived: String
    do { derived = try g.derive(derivation) } catch {
      throw fail(name, "derive failed after derivedTerminals succeeded: \(error)")
    }
    guard derived == expected.joined(separator: g.separator) else {
      throw fail(name, "round trip: derived \(derived.debugDescription) is not the tokens joined")
    }
    // The derived string re-tokenizes to the same terminals when the grammar's longest-match
    // tokenizer splits it the same way; then it must parse to the same derivation.
    if let again = try? g.tokenize(derived), again.map({ g.terminals[$0.terminal] }) == expected {
      let second: [Int]
      do { second = try parser.parse(derived) } catch {
        throw fail(name, "the derived string \(derived.debugDescription) does not parse: \(error)")
      }
      guard second == derivation else {
        throw fail(name, "re-parsing the derived string gives another derivation")
      }
    }
    try checkStack(derivation, g, name)
    if derivation.count <= g.maxLength && g.paddingProduction >= 0 {
      let encoded: [Int32]
      do { encoded = try g.encode(input) } catch {
        throw fail(name, "encode failed although the derivation fits: \(error)")
      }
      guard encoded.count == g.maxLength,
        Array(encoded.prefix(derivation.count)) == derivation.map({ Int32($0) }),
        encoded.dropFirst(derivation.count).allSatisfy({ Int($0) == g.paddingProduction })
      else { throw fail(name, "encode does not give the padded derivation") }
    }
  }

  /// A parse error must be consistent with the tokenizer and point inside the input.
  static func checkError(
    _ error: ParseError, input: String, tokenError: ParseError?, _ g: Grammar, _ name: String
  ) throws(HarnessFailure) {
    rejected(name, error)
    if let tokenError {
      guard case .unexpectedCharacter = error, error == tokenError else {
        throw fail(name, "tokenize says \(tokenError.summary) but parse says \(error.summary)")
      }
    }
    if let at = error.location {
      let n = input.utf8.count
      guard at.offset >= 0 && at.offset <= n, at.line == 1, at.column >= 1,
        at.column <= input.count + 1
      else { throw fail(name, "error location \(at) offset \(at.offset) outside the input") }
    }
    switch error {
    case .emptyInput:
      if let tokens = try? g.tokenize(input), !tokens.isEmpty {
        throw fail(name, "empty input reported for \(tokens.count) tokens")
      }
    case .unexpectedToken(let t, _, _, _):
      guard g.terminals.contains(t) else { throw fail(name, "unexpected token \(t) is no terminal") }
    default: break
    }
  }

  /// The stack decoder must accept the derivation step by step and finish with it.
  static func checkStack(_ derivation: [Int], _ g: Grammar, _ name: String) throws(HarnessFailure)
  {
    let pushes = derivation.reduce(1) { n, p in
      n + g.productions[p].rhs.count(where: { if case .nonterminal = $0 { true } else { false } })
    }
    var stack = DerivationStack(grammar: g, capacity: pushes)
    for (step, p) in derivation.enumerated() {
      guard !stack.isComplete, stack.isAllowed(p) else {
        throw fail(name, "stack decoder does not allow production \(p) at step \(step)")
      }
      do { try stack.apply(production: p) } catch {
        throw fail(name, "stack decoder: \(error)")
      }
    }
    guard stack.isComplete else {
      throw fail(name, "stack decoder still has \(stack.pending) after the derivation")
    }
  }
}
