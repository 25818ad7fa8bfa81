// Integer tables for the Earley parser, built once per grammar.

/// Flat, immutable tables over dotted rules: one entry per position of the dot in each
/// production (`A -> α • β`).
final class ParserTables: @unchecked Sendable {
  // The pointer copies below are written once in `init` and only read afterwards.
  static let end: Int32 = Int32.max

  let tokenizer: TerminalTokenizer
  let terminalCount: Int
  /// Lookahead ids: 0..<T terminals, `eof` end of input, `any` no filtering (diagnostics).
  let eof: Int
  let any: Int
  let startNT: Int32
  let productionCount: Int
  /// First dotted rule of each production.
  let base: [Int32]  // [production]
  /// Symbol after the dot (`end` when the dot is at the end).
  let dotSymbol: [Int32]  // [dotted]
  let dotProduction: [Int32]  // [dotted]
  let lhs: [Int32]  // [production]
  /// Whether an item may stay in a set with lookahead `la`: the rest of the rule can start
  /// with `la`, or is nullable (bit `la` of row `d`).
  let keepBits: [UInt64]  // [dotted, words]
  let words: Int
  /// Dotted rules to predict for non-terminal N with lookahead la:
  /// `predictFlat[predictStart[N * L + la] ..< predictStart[N * L + la + 1]]`.
  let predictStart: [Int32]
  let predictFlat: [Int32]
  let nullable: [Bool]  // [nonterminal]
  /// A canonical empty derivation for each nullable non-terminal (pre-order production list).
  let emptyDerivation: [[Int32]]  // [nonterminal]

  init(
    terminals: [String], skipsWhitespace: Bool, ntCount: Int, start: Int, lhs: [Int32],
    rhs: [[Int32]], usable: [Bool], nullable: [Bool]
  ) {
    tokenizer = TerminalTokenizer(terminals: terminals, skipsWhitespace: skipsWhitespace)
    let T = terminals.count
    terminalCount = T
    eof = T
    any = T + 1
    let L = T + 2
    startNT = Int32(start)
    productionCount = lhs.count
    self.lhs = lhs
    self.nullable = nullable
    var base: [Int32] = []
    var dotSymbol: [Int32] = []
    var dotProduction: [Int32] = []
    for (p, r) in rhs.enumerated() {
      base.append(Int32(dotSymbol.count))
      for s in r {
        dotSymbol.append(s)
        dotProduction.append(Int32(p))
      }
      dotSymbol.append(ParserTables.end)
      dotProduction.append(Int32(p))
    }
    self.base = base
    self.dotSymbol = dotSymbol
    self.dotProduction = dotProduction

    // FIRST sets of non-terminals over usable productions.
    var first = [Set<Int>](repeating: [], count: ntCount)
    var changed = true
    while changed {
      changed = false
      for (p, r) in rhs.enumerated() where usable[p] {
        let a = Int(lhs[p])
        let before = first[a].count
        for s in r {
          if s < 0 {
            first[a].insert(Int(~s))
            break
          }
          first[a].formUnion(first[Int(s)])
          if !nullable[Int(s)] { break }
        }
        if first[a].count != before { changed = true }
      }
    }
    let words = (L + 63) / 64
    self.words = words
    var keep = [UInt64](repeating: 0, count: dotSymbol.count * words)
    for d in 0..<dotSymbol.count {
      let p = Int(dotProduction[d])
      let k = d - Int(base[p])
      var set: Set<Int> = [T + 1]
      var suffixNullable = true
      for s in rhs[p][k...] {
        if s < 0 {
          set.insert(Int(~s))
          suffixNullable = false
          break
        }
        set.formUnion(first[Int(s)])
        if !nullable[Int(s)] {
          suffixNullable = false
          break
        }
      }
      if suffixNullable { set.formUnion(0..<L) }
      for la in set { keep[d * words + la / 64] |= 1 << UInt64(la % 64) }
    }
    keepBits = keep

    // Prediction closures, filtered by lookahead.
    var productionsOf = [[Int]](repeating: [], count: ntCount)
    for p in 0..<lhs.count where usable[p] { productionsOf[Int(lhs[p])].append(p) }
    var predictStart: [Int32] = []
    var predictFlat: [Int32] = []
    for n in 0..<ntCount {
      for la in 0..<L {
        predictStart.append(Int32(predictFlat.count))
        var seen = [Bool](repeating: false, count: ntCount)
        var queue = [n]
        seen[n] = true
        var qi = 0
        while qi < queue.count {
          let m = queue[qi]
          qi += 1
          for p in productionsOf[m] {
            let d = Int(base[p])
            guard keep[d * words + la / 64] & (1 << UInt64(la % 64)) != 0 else { continue }
            predictFlat.append(Int32(d))
            // Predict along the rule's left edge, through nullable symbols.
            for s in rhs[p] {
              guard s >= 0 else { break }
              if !seen[Int(s)] {
                seen[Int(s)] = true
                queue.append(Int(s))
              }
              if !nullable[Int(s)] { break }
            }
          }
        }
      }
    }
    predictStart.append(Int32(predictFlat.count))
    self.predictStart = predictStart
    self.predictFlat = predictFlat

    // Empty derivations: the first production (file order) whose symbols all have one.
    var empty = [[Int32]?](repeating: nil, count: ntCount)
    changed = true
    while changed {
      changed = false
      for (p, r) in rhs.enumerated() where usable[p] && empty[Int(lhs[p])] == nil {
        if r.allSatisfy({ $0 >= 0 && empty[Int($0)] != nil }) {
          empty[Int(lhs[p])] = [Int32(p)] + r.flatMap { empty[Int($0)] ?? [] }
          changed = true
        }
      }
    }
    emptyDerivation = empty.map { $0 ?? [] }
    dotSymbolP = ParserTables.copy(dotSymbol)
    dotProductionP = ParserTables.copy(dotProduction)
    lhsP = ParserTables.copy(lhs)
    keepP = ParserTables.copy(keep)
    predictStartP = ParserTables.copy(predictStart)
    predictFlatP = ParserTables.copy(predictFlat)
    nullableP = ParserTables.copy(nullable)
  }

  // Raw copies of the tables for the parser's inner loop (no bounds or retain traffic).
  let dotSymbolP: UnsafeMutablePointer<Int32>
  let dotProductionP: UnsafeMutablePointer<Int32>
  let lhsP: UnsafeMutablePointer<Int32>
  let keepP: UnsafeMutablePointer<UInt64>
  let predictStartP: UnsafeMutablePointer<Int32>
  let predictFlatP: UnsafeMutablePointer<Int32>
  let nullableP: UnsafeMutablePointer<Bool>

  static func copy<T>(_ a: [T]) -> UnsafeMutablePointer<T> {
    let p = UnsafeMutablePointer<T>.allocate(capacity: max(1, a.count))
    _ = UnsafeMutableBufferPointer(start: p, count: a.count).initialize(from: a)
    return p
  }

  deinit {
    dotSymbolP.deallocate()
    dotProductionP.deallocate()
    lhsP.deallocate()
    keepP.deallocate()
    predictStartP.deallocate()
    predictFlatP.deallocate()
    nullableP.deallocate()
  }

  @inline(__always) func keeps(_ d: Int32, _ la: Int) -> Bool {
    keepBits[Int(d) &* words &+ (la >> 6)] & (1 &<< UInt64(la & 63)) != 0
  }
}
