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
/// `chain -> chain branched_atom`). Items live in flat `Int32` arrays reused from one input to
/// the next; no item allocates. Each item keeps a back-pointer to the item it extends and the
/// completed child that extended it; the first way an item is found wins, so the derivation is
/// deterministic, and a second way marks the item ambiguous. For the shipped grammars, which
/// are unambiguous, the result equals NLTK's `ChartParser` (checked on both full data sets).
///
/// A `Parser` holds scratch buffers: use one per thread.
public struct Parser {
  public let grammar: Grammar
  let t: ParserTables
  final class Scratch {
    var tokens: [Int32] = []
    var offsets: [Int32] = []
    var dot: [Int32] = []
    var sym: [Int32] = []
    var origin: [Int32] = []
    var pred: [Int32] = []
    var child: [Int32] = []
    var nextSame: [Int32] = []
    var ambiguous: [Bool] = []
    var setStart: [Int32] = []
    var scan: [Int32] = []
    var dStamp: [Int] = []
    var dHead: [Int32] = []
    var ntStamp: [Int] = []
    var generation = 0
    var work: [Int32] = []
    var output: [Int32] = []
  }
  let s = Scratch()

  public init(grammar: Grammar) {
    self.grammar = grammar
    self.t = grammar.tables
    s.dStamp = [Int](repeating: -1, count: t.dotSymbol.count)
    s.dHead = [Int32](repeating: -1, count: t.dotSymbol.count)
    s.ntStamp = [Int](repeating: -1, count: t.nullable.count)
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
    s.tokens.removeAll(keepingCapacity: true)
    s.offsets.removeAll(keepingCapacity: true)
    let bad = t.tokenizer.tokenize(bytes, terminals: &s.tokens, offsets: &s.offsets)
    if bad >= 0 { return .failure(.character(offset: bad)) }
    if s.tokens.isEmpty { return .failure(.empty) }
    let accepted = recognize(anyAt: -1)
    if accepted.item < 0 {
      return .failure(accepted.failedAt < s.tokens.count ? .token(index: accepted.failedAt) : .end)
    }
    return .ok(ambiguous: extract(accepted.item, into: &out))
  }

  /// Runs Earley's recognizer over `s.tokens`. With `anyAt` >= 0, the set at that position is
  /// built without lookahead filtering and the run stops there (to list expected terminals).
  /// Returns the accepting item, or -1 and the token index where no item could continue.
  func recognize(anyAt: Int) -> (item: Int, failedAt: Int) {
    let n = anyAt >= 0 ? anyAt : s.tokens.count
    s.dot.removeAll(keepingCapacity: true)
    s.sym.removeAll(keepingCapacity: true)
    s.origin.removeAll(keepingCapacity: true)
    s.pred.removeAll(keepingCapacity: true)
    s.child.removeAll(keepingCapacity: true)
    s.nextSame.removeAll(keepingCapacity: true)
    s.ambiguous.removeAll(keepingCapacity: true)
    s.setStart.removeAll(keepingCapacity: true)
    let tokenCount = s.tokens.count
    @inline(__always) func lookahead(_ i: Int) -> Int {
      if i == anyAt { return t.any }
      return i < tokenCount ? Int(s.tokens[i]) : t.eof
    }

    s.generation += 1
    s.setStart.append(0)
    var la = lookahead(0)
    predict(t.startNT, set: 0, la: la)
    var i = 0
    while true {
      // Complete and predict within set i.
      var idx = Int(s.setStart[i])
      s.scan.removeAll(keepingCapacity: true)
      while idx < s.dot.count {
        let x = s.sym[idx]
        if x == ParserTables.end {
          let j = Int(s.origin[idx])
          if j != i {
            let a = t.lhs[Int(t.dotProduction[Int(s.dot[idx])])]
            var k = Int(s.setStart[j])
            let kEnd = Int(s.setStart[j + 1])
            while k < kEnd {
              if s.sym[k] == a {
                let nd = s.dot[k] &+ 1
                if t.keeps(nd, la) {
                  add(nd, origin: s.origin[k], pred: Int32(k), child: Int32(idx))
                }
              }
              k += 1
            }
          }
        } else if x >= 0 {
          predict(x, set: i, la: la)
          if t.nullable[Int(x)] {
            // Aycock–Horspool: step over a nullable symbol at once.
            let nd = s.dot[idx] &+ 1
            if t.keeps(nd, la) {
              add(nd, origin: s.origin[idx], pred: Int32(idx), child: -2 - x)
            }
          }
        } else if i < n {
          s.scan.append(Int32(idx))
        }
        idx += 1
      }
      if i == n { break }
      // Scan token i into set i + 1.
      let token = ~s.tokens[i]
      s.generation += 1
      s.setStart.append(Int32(s.dot.count))
      la = lookahead(i + 1)
      for k in s.scan {
        let k = Int(k)
        if s.sym[k] == token {
          let nd = s.dot[k] &+ 1
          if t.keeps(nd, la) { add(nd, origin: s.origin[k], pred: Int32(k), child: -1) }
        }
      }
      i += 1
      if Int(s.setStart[i]) == s.dot.count {
        s.setStart.append(Int32(s.dot.count))
        return (-1, i - 1)
      }
    }
    s.setStart.append(Int32(s.dot.count))
    if anyAt < 0 {
      var k = Int(s.setStart[n])
      while k < s.dot.count {
        if s.sym[k] == ParserTables.end && s.origin[k] == 0
          && t.lhs[Int(t.dotProduction[Int(s.dot[k])])] == t.startNT
        {
          return (k, n)
        }
        k += 1
      }
    }
    return (-1, n)
  }

  @inline(__always) func predict(_ nt: Int32, set i: Int, la: Int) {
    let n = Int(nt)
    if s.ntStamp[n] == s.generation { return }
    s.ntStamp[n] = s.generation
    let row = n * (t.terminalCount + 2) + la
    var k = Int(t.predictStart[row])
    let end = Int(t.predictStart[row + 1])
    while k < end {
      add(t.predictFlat[k], origin: Int32(i), pred: -1, child: -1)
      k += 1
    }
  }

  @inline(__always) func add(_ d: Int32, origin: Int32, pred: Int32, child: Int32) {
    let di = Int(d)
    if s.dStamp[di] == s.generation {
      var k = Int(s.dHead[di])
      while k >= 0 {
        if s.origin[k] == origin {
          if s.pred[k] != pred || s.child[k] != child { s.ambiguous[k] = true }
          return
        }
        k = Int(s.nextSame[k])
      }
    } else {
      s.dStamp[di] = s.generation
      s.dHead[di] = -1
    }
    let index = Int32(s.dot.count)
    s.dot.append(d)
    s.sym.append(t.dotSymbol[di])
    s.origin.append(origin)
    s.pred.append(pred)
    s.child.append(child)
    s.ambiguous.append(false)
    s.nextSame.append(s.dHead[di])
    s.dHead[di] = index
  }

  /// Writes the pre-order production list of the tree under `item`; returns whether any
  /// item on the way has a second derivation.
  func extract(_ item: Int, into out: inout [Int32]) -> Bool {
    var ambiguous = false
    s.work.removeAll(keepingCapacity: true)
    s.work.append(Int32(item))
    while let it = s.work.popLast() {
      if it <= -2 {
        out.append(contentsOf: t.emptyDerivation[Int(-2 - it)])
        continue
      }
      var k = Int(it)
      let p = t.dotProduction[Int(s.dot[k])]
      out.append(p)
      // Children right to left along the back-pointer chain; the leftmost ends on top.
      let first = t.base[Int(p)]
      while s.dot[k] != first {
        if s.ambiguous[k] { ambiguous = true }
        let c = s.child[k]
        if c != -1 { s.work.append(c) }
        k = Int(s.pred[k])
      }
      if s.ambiguous[k] { ambiguous = true }
    }
    return ambiguous
  }

  /// Terminals that could come at token position `i` (and "" for the end of input).
  func expected(at i: Int) -> [String] {
    _ = recognize(anyAt: i)
    var set = Set<Int>()
    var canEnd = false
    var k = Int(s.setStart[i])
    let end = Int(s.setStart[i + 1])
    while k < end {
      let x = s.sym[k]
      if x < 0 {
        set.insert(Int(~x))
      } else if x == ParserTables.end && s.origin[k] == 0
        && t.lhs[Int(t.dotProduction[Int(s.dot[k])])] == t.startNT
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
        at: SourceLocation(line: 1, column: column(ofByte: offset, in: input), offset: offset),
        input: input)
    case .token(let index):
      let offset = Int(s.offsets[index])
      let token = grammar.terminals[Int(s.tokens[index])]
      return .unexpectedToken(
        token, at: SourceLocation(line: 1, column: column(ofByte: offset, in: input), offset: offset),
        expected: expected(at: index), input: input)
    case .end:
      let offset = input.utf8.count
      return .unexpectedEnd(
        at: SourceLocation(line: 1, column: column(ofByte: offset, in: input), offset: offset),
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
