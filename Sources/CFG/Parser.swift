// A general context-free parser: Earley's algorithm over integer tables, with one-token
// lookahead filtering, back-pointers for a deterministic first derivation, and no recursion.

/// The outcome of parsing one string with ambiguity tracking.
public struct ParseResult: Sendable, Equatable {
  /// The leftmost derivation as production indices.
  public var productions: [Int]
  /// Whether the input has more than one parse tree (the first one found is returned).
  public var isAmbiguous: Bool
}

/// Parses strings into leftmost derivations (production indices).
///
/// Earley's algorithm handles any context-free grammar, left recursion included (ZINC's
/// `chain -> chain branched_atom`). Items live in one raw buffer reused from one input to the
/// next; no item allocates. Predictions come from precomputed closures filtered by the next
/// token, and an item whose rest cannot start with the next token is never added, which keeps
/// the sets small. Each item keeps a back-pointer to the item it extends and the
/// completed child that extended it; the first way an item is found wins, so the derivation is
/// deterministic, and a second way marks the item ambiguous. For the shipped grammars, which
/// are unambiguous, the result equals NLTK's `ChartParser` (checked on both full data sets).
///
/// A `Parser` holds scratch buffers: use one per thread.
public struct Parser {
  public let grammar: Grammar
  let t: ParserTables
  let s: Scratch

  public init(grammar: Grammar) {
    self.grammar = grammar
    self.t = grammar.tables
    self.s = Scratch(dottedCount: t.dotSymbol.count, ntCount: t.nullable.count)
  }

  /// The leftmost derivation of `input` as production indices (no padding).
  /// - Throws: `ParseError` with the column of the offending character or token and the
  ///   terminals that could continue there.
  public func parse(_ input: String) throws(ParseError) -> [Int] {
    var out: [Int32] = []
    try parse(input, into: &out)
    return out.map { Int($0) }
  }

  /// Parses and reports whether the input is ambiguous.
  public func parseReportingAmbiguity(_ input: String) throws(ParseError) -> ParseResult {
    var out: [Int32] = []
    let ambiguous = try parse(input, into: &out)
    return ParseResult(productions: out.map { Int($0) }, isAmbiguous: ambiguous)
  }

  /// Appends the derivation of `input` to `out`; returns whether the input is ambiguous.
  @discardableResult
  public func parse(_ input: String, into out: inout [Int32]) throws(ParseError) -> Bool {
    var copy = input
    let result = copy.withUTF8 { parseBytes($0, into: &out) }
    switch result {
    case .ok(let ambiguous):
      return ambiguous
    case .failure(let failure):
      throw error(for: failure, input: input)
    }
  }

  enum Failure {
    case empty
    case character(offset: Int)
    case token(index: Int)
    case end
  }
  enum Outcome {
    case ok(ambiguous: Bool)
    case failure(Failure)
  }

  /// Tokenizes and parses UTF-8 bytes; the hot path (no throwing, no allocation once warm).
  func parseBytes(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) -> Outcome {
    var tokens = s.tokens
    var offsets = s.offsets
    s.tokens = []
    s.offsets = []
    tokens.removeAll(keepingCapacity: true)
    offsets.removeAll(keepingCapacity: true)
    let bad = t.tokenizer.tokenize(bytes, terminals: &tokens, offsets: &offsets)
    s.tokens = tokens
    s.offsets = offsets
    if bad >= 0 { return .failure(.character(offset: bad)) }
    if tokens.isEmpty { return .failure(.empty) }
    let accepted = recognize(anyAt: -1)
    if accepted.item < 0 {
      return .failure(accepted.failedAt < tokens.count ? .token(index: accepted.failedAt) : .end)
    }
    return .ok(ambiguous: extract(accepted.item, into: &out))
  }

  /// Runs Earley's recognizer over `s.tokens`. With `anyAt` >= 0, the set at that position is
  /// built without lookahead filtering and the run stops there (to list expected terminals).
  /// Returns the accepting item, or -1 and the token index where no item could continue.
  func recognize(anyAt: Int) -> (item: Int, failedAt: Int) {
    s.tokens.withUnsafeBufferPointer { tokens in
      var e = Earley(tables: t, scratch: s, tokens: tokens)
      let r = e.run(anyAt: anyAt)
      e.store(into: s)
      return r
    }
  }

  /// Writes the pre-order production list of the tree under `item`; returns whether any
  /// item on the way has a second derivation.
  func extract(_ item: Int, into out: inout [Int32]) -> Bool {
    var ambiguous = false
    var work = s.work
    s.work = []
    work.removeAll(keepingCapacity: true)
    work.append(Int32(item))
    let items = s.items
    while let it = work.popLast() {
      if it <= -2 {
        out.append(contentsOf: t.emptyDerivation[Int(-2 - it)])
        continue
      }
      var k = Int(it)
      let p = t.dotProductionP[Int(items[k].dot)]
      out.append(p)
      // Children right to left along the back-pointer chain; the leftmost ends on top.
      let first = t.base[Int(p)]
      while items[k].dot != first {
        if items[k].ambiguous != 0 { ambiguous = true }
        let c = items[k].child
        if c != -1 { work.append(c) }
        k = Int(items[k].pred)
      }
      if items[k].ambiguous != 0 { ambiguous = true }
    }
    s.work = work
    return ambiguous
  }

  /// Terminals that could come at token position `i` (and "" for the end of input).
  func expected(at i: Int) -> [String] {
    guard recognize(anyAt: i).failedAt >= i else { return [] }
    var set = Set<Int>()
    var canEnd = false
    var k = Int(s.setStart[i])
    let end = Int(s.setStart[i + 1])
    while k < end {
      let x = s.items[k].sym
      if x < 0 {
        set.insert(Int(~x))
      } else if x == ParserTables.end && s.items[k].origin == 0
        && t.lhs[Int(t.dotProduction[Int(s.items[k].dot)])] == t.startNT
      {
        canEnd = true
      }
      k += 1
    }
    var names = set.sorted().map { grammar.terminals[$0] }
    names.sort()
    if canEnd { names.append("") }
    return names
  }

  func error(for failure: Failure, input: String) -> ParseError {
    switch failure {
    case .empty:
      return .emptyInput
    case .character(let offset):
      return .unexpectedCharacter(
        character(atByte: offset, in: input),
        at: TextLocation(line: 1, column: column(ofByte: offset, in: input), offset: offset),
        input: input)
    case .token(let index):
      let offset = Int(s.offsets[index])
      let token = grammar.terminals[Int(s.tokens[index])]
      return .unexpectedToken(
        token, at: TextLocation(line: 1, column: column(ofByte: offset, in: input), offset: offset),
        expected: expected(at: index), input: input)
    case .end:
      let offset = input.utf8.count
      return .unexpectedEnd(
        at: TextLocation(line: 1, column: column(ofByte: offset, in: input), offset: offset),
        expected: expected(at: s.tokens.count), input: input)
    }
  }
}

extension Grammar {
  /// The leftmost derivation of `input` (a convenience that builds a `Parser`; reuse a
  /// `Parser` when parsing many strings).
  public func parse(_ input: String) throws(ParseError) -> [Int] {
    try Parser(grammar: self).parse(input)
  }
}
