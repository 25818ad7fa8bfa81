// Context-free grammars in NLTK's CFG text format, with analysis and integer tables.

/// One symbol on a right-hand side.
public enum GrammarSymbol: Hashable, Sendable, CustomStringConvertible {
  case terminal(String)
  case nonterminal(String)

  public var description: String {
    switch self {
    case .terminal(let t): return quoted(t)
    case .nonterminal(let n): return n
    }
  }
}

/// A numbered production `lhs -> rhs`.
public struct Production: Hashable, Sendable, CustomStringConvertible {
  public let lhs: String
  /// Empty for `None` (the padding production).
  public let rhs: [GrammarSymbol]
  /// Where the left-hand side of this production is written in the grammar file.
  public let location: TextLocation

  public var description: String {
    "\(lhs) -> " + (rhs.isEmpty ? "None" : rhs.map(\.description).joined(separator: " "))
  }
}

/// A context-free grammar: numbered productions, masks, and what the analysis found.
///
/// Productions are numbered from 0 in file order; the order is the model contract (one-hot
/// width and index meaning). Rows of the mask are the non-terminals that have productions,
/// in order of first definition (Kusner et al. 2017, `lhs_list`).
public struct Grammar: Sendable {
  /// The grammar's name (`zinc`, `equation`) or its file name.
  public let name: String
  public let productions: [Production]
  public let startSymbol: String
  /// Non-terminals with at least one production, in order of first definition: mask rows.
  public let nonterminals: [String]
  /// Terminals in order of first use.
  public let terminals: [String]
  /// Non-terminals used on a right-hand side but never defined (for example `class` in ZINC).
  public let undefinedSymbols: [String]
  /// Defined non-terminals that derive no terminal string.
  public let nonproductiveSymbols: [String]
  /// Productions that can never complete; the mask never allows them.
  public let maskedProductions: [Int]
  /// Defined non-terminals that the start symbol never reaches (the padding symbol excepted).
  public let unreachableSymbols: [String]
  /// Warnings from the analysis (undefined, non-productive, unreachable).
  public let warnings: [GrammarWarning]
  /// The production used to pad sequences: the last one with an empty right-hand side
  /// (preferably with left-hand side `Nothing`).
  public let paddingProduction: Int
  /// Default sequence length for models (277 ZINC, 15 expressions).
  public var maxLength: Int
  /// Joins terminals when deriving strings: "" for SMILES, " " for expressions.
  public var separator: String

  // Integer tables. Symbols: non-terminal n >= 0 (rows first, undefined after), terminal t < 0
  // as ~t.
  let lhsID: [Int32]  // [production]
  let rhsIDs: [[Int32]]  // [production][k]
  let productionsOf: [[Int32]]  // [nonterminal]
  let ntCount: Int  // rows + undefined
  let rowCount: Int
  let usable: [Bool]  // [production]
  let nullable: [Bool]  // [nonterminal]
  /// Fewest derivation steps to derive a terminal string from each non-terminal (Int.max: never).
  let minSteps: [Int]  // [nonterminal]
  let tables: ParserTables
  let decoder: DecoderTables

  /// Loads grammar text.
  /// - Parameters:
  ///   - text: NLTK CFG format (`lhs -> rhs | rhs`, quoted terminals, `#` comments, `None`).
  ///   - name: the name used in messages (a file name).
  ///   - maxLength: default sequence length for encodings.
  ///   - separator: joins terminals when deriving strings.
  /// - Throws: `GrammarError` for a syntax error, an empty grammar, or a start symbol that
  ///   derives no terminal string.
  public init(
    text: String, name: String = "<grammar>", maxLength: Int = 100, separator: String = ""
  )
    throws(GrammarError)
  {
    let file = try GrammarFile.read(text, name: name)
    self.name = name
    self.maxLength = maxLength
    self.separator = separator
    let productions = file.productions
    self.productions = productions
    let start = file.start ?? productions[0].lhs
    self.startSymbol = start

    // Symbol tables.
    var rows: [String] = []
    var rowIndex: [String: Int] = [:]
    for p in productions where rowIndex[p.lhs] == nil {
      rowIndex[p.lhs] = rows.count
      rows.append(p.lhs)
    }
    var ntIndex = rowIndex
    var allNT = rows
    var undefined: [String] = []
    var undefinedAt: [String: TextLocation] = [:]
    var terms: [String] = []
    var termIndex: [String: Int] = [:]
    for p in productions {
      for s in p.rhs {
        switch s {
        case .nonterminal(let n):
          if ntIndex[n] == nil {
            ntIndex[n] = allNT.count
            allNT.append(n)
            undefined.append(n)
            undefinedAt[n] = file.symbolLocations[n] ?? p.location
          }
        case .terminal(let t):
          if termIndex[t] == nil {
            termIndex[t] = terms.count
            terms.append(t)
          }
        }
      }
    }
    self.nonterminals = rows
    self.terminals = terms
    self.undefinedSymbols = undefined
    self.rowCount = rows.count
    self.ntCount = allNT.count
    guard let startID = ntIndex[start], startID < rows.count else {
      throw GrammarError(
        file: name, location: file.startLocation ?? TextLocation(line: 1, column: 1),
        message: "start symbol \(start) has no productions", lineText: "")
    }

    let lhsID = productions.map { Int32(ntIndex[$0.lhs]!) }
    let rhsIDs: [[Int32]] = productions.map { p in
      p.rhs.map { s -> Int32 in
        switch s {
        case .nonterminal(let n): return Int32(ntIndex[n]!)
        case .terminal(let t): return ~Int32(termIndex[t]!)
        }
      }
    }
    var productionsOf = [[Int32]](repeating: [], count: allNT.count)
    for (i, l) in lhsID.enumerated() { productionsOf[Int(l)].append(Int32(i)) }
    self.lhsID = lhsID
    self.rhsIDs = rhsIDs
    self.productionsOf = productionsOf

    // Productive symbols and the fewest steps to a terminal string (a fixpoint).
    var minSteps = [Int](repeating: Int.max, count: allNT.count)
    var changed = true
    while changed {
      changed = false
      for (p, rhs) in rhsIDs.enumerated() {
        var cost = 1
        for s in rhs where s >= 0 {
          if minSteps[Int(s)] == Int.max {
            cost = Int.max
            break
          }
          cost = Grammar.addSteps(cost, minSteps[Int(s)])
        }
        let l = Int(lhsID[p])
        if cost < minSteps[l] {
          minSteps[l] = cost
          changed = true
        }
      }
    }
    self.minSteps = minSteps
    let usable = rhsIDs.map { rhs in rhs.allSatisfy { $0 < 0 || minSteps[Int($0)] != Int.max } }
    self.usable = usable
    self.maskedProductions = usable.indices.filter { !usable[$0] }
    self.nonproductiveSymbols = rows.indices.filter { minSteps[$0] == Int.max }.map { rows[$0] }

    var nullable = [Bool](repeating: false, count: allNT.count)
    changed = true
    while changed {
      changed = false
      for (p, rhs) in rhsIDs.enumerated() where !nullable[Int(lhsID[p])] {
        if rhs.allSatisfy({ $0 >= 0 && nullable[Int($0)] }) {
          nullable[Int(lhsID[p])] = true
          changed = true
        }
      }
    }
    self.nullable = nullable

    // Padding: the last empty production, preferring left-hand side `Nothing`.
    let empties = productions.indices.filter { productions[$0].rhs.isEmpty }
    self.paddingProduction =
      empties.last(where: { productions[$0].lhs == "Nothing" }) ?? empties.last ?? -1

    // Reachability from the start symbol over usable productions.
    var reached = [Bool](repeating: false, count: allNT.count)
    var queue = [Int(startID)]
    reached[Int(startID)] = true
    while let n = queue.popLast() {
      for p in productionsOf[n] where usable[Int(p)] {
        for s in rhsIDs[Int(p)] where s >= 0 && !reached[Int(s)] {
          reached[Int(s)] = true
          queue.append(Int(s))
        }
      }
    }
    let paddingLHS = paddingProduction >= 0 ? productions[paddingProduction].lhs : ""
    self.unreachableSymbols = rows.indices.filter { !reached[$0] && rows[$0] != paddingLHS }
      .map { rows[$0] }

    var warnings: [GrammarWarning] = []
    for n in undefined {
      warnings.append(
        GrammarWarning(
          file: name, location: undefinedAt[n] ?? TextLocation(line: 1, column: 1),
          message: "non-terminal \(n) is used but has no productions"))
    }
    for p in maskedProductions {
      warnings.append(
        GrammarWarning(
          file: name, location: productions[p].location,
          message: "production \(p) (\(productions[p])) can never derive a terminal string;"
            + " it is masked out"))
    }
    for n in unreachableSymbols {
      warnings.append(
        GrammarWarning(
          file: name, location: productions[Int(productionsOf[rowIndex[n]!][0])].location,
          message: "non-terminal \(n) is unreachable from the start symbol \(start)"))
    }
    self.warnings = warnings
    self.tables = ParserTables(
      terminals: terms,
      skipsWhitespace: !terms.contains {
        $0.unicodeScalars.contains { $0.properties.isWhitespace }
      },
      ntCount: allNT.count, start: Int(startID), lhs: lhsID, rhs: rhsIDs, usable: usable,
      nullable: nullable)

    self.decoder = DecoderTables(
      rowCount: rows.count, startRow: startID, paddingProduction: paddingProduction,
      lhs: lhsID, usable: usable, rhs: rhsIDs, names: rows)
    if minSteps[Int(startID)] == Int.max {
      let at = productions[Int(productionsOf[Int(startID)][0])].location
      throw GrammarError(
        file: name, location: at,
        message: "start symbol \(start) derives no terminal string"
          + " (left recursion or a cycle with no base case?); expected a production of \(start)"
          + " whose right-hand side can finish",
        lineText: file.lines[at.line - 1])
    }
  }

  /// The mask row of each production's left-hand side.
  public var lhsIndexOfProduction: [Int] { lhsID.map { Int($0) } }

  /// The mask row of the padding production's left-hand side (the row used when a stack is
  /// empty), or -1 when the grammar has no empty production.
  public var paddingLHS: Int { paddingProduction >= 0 ? Int(lhsID[paddingProduction]) : -1 }

  /// The mask row of the start symbol.
  public var startLHS: Int { nonterminals.firstIndex(of: startSymbol) ?? 0 }

  /// Whether production `p` may ever be chosen (false for masked-out productions).
  public func isUsable(_ p: Int) -> Bool { p >= 0 && p < usable.count && usable[p] }

  /// The fewest derivation steps that choosing production `p` commits to: `p` itself plus the
  /// fewest steps of every non-terminal it introduces (`Int.max` when it can never finish).
  /// Decoders use it to keep a derivation finishable within a length limit.
  public func stepsToFinish(production p: Int) -> Int {
    guard isUsable(p) else { return Int.max }
    return rhsIDs[p].reduce(1) { $1 >= 0 ? Grammar.addSteps($0, minSteps[Int($1)]) : $0 }
  }

  /// Step counts saturate here. A grammar file of a few hundred bytes can need more than
  /// `Int.max` steps (`A -> B B B`, `B -> C C C`, …: 3^n), which must not overflow; so long a
  /// derivation fits no model anyway. `Int.max` stays the mark of "never finishes".
  static let stepCountLimit = 1 << 48

  /// `a + b` for step counts, saturating at `stepCountLimit` (both are at most the limit).
  @inline(__always) static func addSteps(_ a: Int, _ b: Int) -> Int {
    min(a + b, stepCountLimit)
  }

  /// Whether the grammar has a terminal that contains whitespace.
  public var hasWhitespaceTerminal: Bool {
    terminals.contains { $0.unicodeScalars.contains { $0.properties.isWhitespace } }
  }
}

// MARK: - Reading the file format

/// The syntax layer: lines of `lhs -> alternatives`, like `nltk.CFG.fromstring`.
struct GrammarFile {
  var productions: [Production] = []
  var start: String?
  var startLocation: TextLocation?
  var lines: [String] = []
  /// First use of each symbol on a right-hand side.
  var symbolLocations: [String: TextLocation] = [:]

  static func isNameByte(_ b: UInt8, first: Bool) -> Bool {
    // NLTK: [\w/][\w/^<>-]*
    if b >= 0x80 { return true }
    let c = Character(Unicode.Scalar(b))
    if c.isLetter || c.isNumber || c == "_" || c == "/" { return true }
    return !first && (c == "^" || c == "<" || c == ">" || c == "-")
  }

  static func read(_ text: String, name: String) throws(GrammarError) -> GrammarFile {
    var g = GrammarFile()
    g.lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
      $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
    }
    var lineNo = 0
    while lineNo < g.lines.count {
      let lineIndex = lineNo
      lineNo += 1
      let line = Array(g.lines[lineIndex].utf8)
      func loc(_ i: Int) -> TextLocation {
        let column = String(decoding: line[0..<min(i, line.count)], as: UTF8.self).count + 1
        return TextLocation(line: lineIndex + 1, column: column, offset: i)
      }
      func fail(_ i: Int, _ message: String) -> GrammarError {
        GrammarError(file: name, location: loc(i), message: message, lineText: g.lines[lineIndex])
      }
      var i = 0
      func skipSpace() {
        while i < line.count && (line[i] == 0x20 || line[i] == 0x09) { i += 1 }
      }
      func readName() -> String? {
        guard i < line.count, isNameByte(line[i], first: true) else { return nil }
        let s = i
        while i < line.count && isNameByte(line[i], first: false) {
          // `->` ends a name: NLTK's name pattern allows `-` but not before `>`.
          if line[i] == UInt8(ascii: "-") && i + 1 < line.count && line[i + 1] == UInt8(ascii: ">")
          {
            break
          }
          i += 1
        }
        return String(decoding: line[s..<i], as: UTF8.self)
      }
      skipSpace()
      if i == line.count || line[i] == UInt8(ascii: "#") { continue }
      if line[i] == UInt8(ascii: "%") {
        i += 1
        guard let directive = readName() else { throw fail(i, "expected a directive after '%'") }
        guard directive == "start" else {
          throw fail(i, "unknown directive %\(directive); expected %start")
        }
        skipSpace()
        let at = loc(i)
        guard let s = readName() else { throw fail(i, "expected a start symbol after %start") }
        g.start = s
        g.startLocation = at
        continue
      }
      let lhsAt = loc(i)
      guard let lhs = readName() else {
        throw fail(i, "expected a non-terminal name at the start of a production")
      }
      skipSpace()
      guard i + 1 < line.count, line[i] == UInt8(ascii: "-"), line[i + 1] == UInt8(ascii: ">")
      else {
        throw fail(i, "expected '->' after the left-hand side \(lhs)")
      }
      i += 2
      var alternatives: [[GrammarSymbol]] = [[]]
      var sawNone = [false]
      while true {
        skipSpace()
        if i >= line.count || line[i] == UInt8(ascii: "#") {
          break
        }
        let b = line[i]
        if b == UInt8(ascii: "|") {
          alternatives.append([])
          sawNone.append(false)
          i += 1
        } else if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") {
          let s = i + 1
          var j = s
          while j < line.count && line[j] != b { j += 1 }
          guard j < line.count else {
            throw fail(
              i, "unterminated quoted terminal; expected a closing \(Character(Unicode.Scalar(b)))")
          }
          guard j > s else { throw fail(i, "empty terminal; expected at least one character") }
          let t = String(decoding: line[s..<j], as: UTF8.self)
          if sawNone[sawNone.count - 1] {
            throw fail(i, "None must stand alone in an alternative")
          }
          alternatives[alternatives.count - 1].append(.terminal(t))
          i = j + 1
        } else {
          let at = loc(i)
          guard let n = readName() else {
            throw fail(
              i, "unexpected character; expected a non-terminal name, a quoted terminal or '|'")
          }
          if n == "None" {
            guard alternatives[alternatives.count - 1].isEmpty else {
              throw fail(at.offset, "None must stand alone in an alternative")
            }
            sawNone[sawNone.count - 1] = true
          } else {
            if sawNone[sawNone.count - 1] {
              throw fail(at.offset, "None must stand alone in an alternative")
            }
            alternatives[alternatives.count - 1].append(.nonterminal(n))
            if g.symbolLocations[n] == nil { g.symbolLocations[n] = at }
          }
        }
      }
      for rhs in alternatives {
        g.productions.append(Production(lhs: lhs, rhs: rhs, location: lhsAt))
      }
    }
    guard !g.productions.isEmpty else {
      throw GrammarError(
        file: name, location: TextLocation(line: 1, column: 1),
        message: "no productions; expected lines like `S -> A 'b' | 'c'`", lineText: "")
    }
    return g
  }
}
