// The stack decoder state (REFERENCE.md §2): which left-hand side to expand next, which
// productions the mask allows, and strings from production sequences.

/// One derivation in progress: a stack of non-terminals (mask rows), leftmost on top.
///
/// Starts with the start symbol. `currentLHS` is the top non-terminal, or the padding
/// row once the stack is empty; `apply(production:)` pops it and pushes the production's
/// right-hand-side non-terminals in reverse. The buffer has fixed capacity: applying
/// allocates nothing.
public struct DerivationStack: Sendable {
  let d: DecoderTables
  var buffer: [Int32]  // [capacity]
  public private(set) var count: Int
  /// Productions applied so far (padding included).
  public private(set) var steps: Int

  /// - Parameter capacity: the most symbols the stack holds; defaults to what a derivation
  ///   of the grammar's maximum length can need.
  public init(grammar: Grammar, capacity: Int? = nil) {
    d = grammar.decoder
    buffer = [Int32](
      repeating: 0, count: max(1, capacity ?? d.capacity(forMaxLength: grammar.maxLength)))
    count = 1
    buffer[0] = d.startRow
    steps = 0
  }

  /// Starts over with the start symbol.
  public mutating func reset() {
    count = 1
    buffer[0] = d.startRow
    steps = 0
  }

  /// Whether every non-terminal has been expanded.
  public var isComplete: Bool { count == 0 }

  /// The mask row to use now: the top non-terminal, or the padding row when complete.
  public var currentLHS: Int { count > 0 ? Int(buffer[count - 1]) : Int(d.paddingRow) }

  /// Whether the mask allows production `p` now.
  public func isAllowed(_ p: Int) -> Bool {
    p >= 0 && p < d.productionCount && d.usable[p] && Int(d.lhs[p]) == currentLHS
  }

  /// Writes the allowed-production mask (1 or 0 per production) into `mask`.
  public func allowedMask(into mask: UnsafeMutableBufferPointer<Float>) {
    let row = Int32(currentLHS)
    for p in 0..<min(mask.count, d.productionCount) {
      mask[p] = d.usable[p] && d.lhs[p] == row ? 1 : 0
    }
  }

  /// The allowed-production mask as an array.
  public var allowedMask: [Float] {
    (0..<d.productionCount).map { isAllowed($0) ? 1 : 0 }
  }

  /// Expands the current left-hand side with production `p`.
  /// - Throws: `DerivationError` when `p` is not allowed now or the stack would overflow.
  public mutating func apply(production p: Int) throws(DerivationError) {
    guard p >= 0 && p < d.productionCount else { throw .unknownProduction(p, step: steps) }
    guard d.usable[p] else { throw .maskedProduction(p, step: steps) }
    let lhs = currentLHS
    guard Int(d.lhs[p]) == lhs else {
      throw .notAllowed(production: p, step: steps, expectedLHS: lhs >= 0 ? d.names[lhs] : "")
    }
    steps += 1
    if count == 0 { return }  // padding after completion
    count -= 1
    let start = Int(d.pushStart[p])
    let end = Int(d.pushStart[p + 1])
    guard count + end - start <= buffer.count else {
      throw .tooDeep(capacity: buffer.count, step: steps - 1)
    }
    for k in start..<end {
      buffer[count] = d.pushFlat[k]
      count += 1
    }
  }

  /// The non-terminals still to expand, leftmost first.
  public var pending: [String] { buffer[0..<count].reversed().map { d.names[Int($0)] } }
}

/// `B` derivation stacks in one flat buffer, driven a step at a time by a batched decoder.
public struct StackBatch: Sendable {
  let d: DecoderTables
  public let batchSize: Int
  public let capacity: Int
  var buffer: [Int32]  // [batch, capacity]
  var counts: [Int32]  // [batch]
  public private(set) var steps: Int

  public init(grammar: Grammar, batchSize: Int, capacity: Int? = nil) {
    d = grammar.decoder
    self.batchSize = batchSize
    self.capacity = max(1, capacity ?? d.capacity(forMaxLength: grammar.maxLength))
    buffer = [Int32](repeating: 0, count: batchSize * self.capacity)
    counts = [Int32](repeating: 0, count: batchSize)
    steps = 0
    reset()
  }

  /// Every row starts over with the start symbol.
  public mutating func reset() {
    for b in 0..<batchSize {
      buffer[b * capacity] = d.startRow
      counts[b] = 1
    }
    steps = 0
  }

  /// Sequence `row` starts over with the start symbol.
  public mutating func reset(row: Int) {
    buffer[row * capacity] = d.startRow
    counts[row] = 1
  }

  /// The mask row for sequence `row`: its top non-terminal, or the padding row when complete.
  public func currentLHS(_ row: Int) -> Int {
    let c = Int(counts[row])
    return c > 0 ? Int(buffer[row * capacity + c - 1]) : Int(d.paddingRow)
  }

  /// Writes every row's current left-hand side into `lhs` (`[batch]`).
  public func currentLHS(into lhs: UnsafeMutableBufferPointer<Int32>) {
    for b in 0..<batchSize { lhs[b] = Int32(currentLHS(b)) }
  }

  /// Whether sequence `row` is complete.
  public func isComplete(_ row: Int) -> Bool { counts[row] == 0 }

  /// Whether every sequence is complete.
  public var allComplete: Bool { counts.allSatisfy { $0 == 0 } }

  /// Sets disallowed entries of `logits` (`[batch, productions]`) to `fill` (default -inf).
  public func maskLogits(_ logits: UnsafeMutableBufferPointer<Float>, fill: Float = -.infinity) {
    let P = d.productionCount
    for b in 0..<batchSize {
      let row = Int32(currentLHS(b))
      for p in 0..<P where !(d.usable[p] && d.lhs[p] == row) { logits[b * P + p] = fill }
    }
  }

  /// Expands sequence `row` with production `p`.
  public mutating func apply(production p: Int, row: Int) throws(DerivationError) {
    guard p >= 0 && p < d.productionCount else { throw .unknownProduction(p, step: steps) }
    guard d.usable[p] else { throw .maskedProduction(p, step: steps) }
    let lhs = currentLHS(row)
    guard Int(d.lhs[p]) == lhs else {
      throw .notAllowed(production: p, step: steps, expectedLHS: lhs >= 0 ? d.names[lhs] : "")
    }
    var c = Int(counts[row])
    if c == 0 { return }
    c -= 1
    let start = Int(d.pushStart[p])
    let end = Int(d.pushStart[p + 1])
    guard c + end - start <= capacity else { throw .tooDeep(capacity: capacity, step: steps) }
    let base = row * capacity
    for k in start..<end {
      buffer[base + c] = d.pushFlat[k]
      c += 1
    }
    counts[row] = Int32(c)
  }

  /// Applies one production per row (`choices[row]`) and counts a step. Every choice is
  /// checked first, so on error no row has changed.
  public mutating func apply(_ choices: some Collection<Int>) throws(DerivationError) {
    precondition(choices.count == batchSize, "\(choices.count) choices for \(batchSize) rows")
    for (row, p) in choices.enumerated() {
      guard p >= 0 && p < d.productionCount else { throw .unknownProduction(p, step: steps) }
      guard d.usable[p] else { throw .maskedProduction(p, step: steps) }
      let lhs = currentLHS(row)
      guard Int(d.lhs[p]) == lhs else {
        throw .notAllowed(production: p, step: steps, expectedLHS: lhs >= 0 ? d.names[lhs] : "")
      }
    }
    for (row, p) in choices.enumerated() { try apply(production: p, row: row) }
    steps += 1
  }
}

extension Grammar {
  /// The string a production sequence derives: terminals joined by `separator` (default the
  /// grammar's: "" for SMILES, " " for expressions). Trailing padding is allowed.
  /// - Throws: `DerivationError` for an index out of range, a production that does not
  ///   expand the current symbol, or a sequence that ends before the derivation is complete
  ///   (never a truncated string).
  public func derive(_ sequence: some Collection<Int>, separator: String? = nil)
    throws(DerivationError) -> String
  {
    try derivedTerminals(sequence).joined(separator: separator ?? self.separator)
  }

  /// The terminals a production sequence derives, in order.
  public func derivedTerminals(_ sequence: some Collection<Int>) throws(DerivationError) -> [String]
  {
    var stack: [Int32] = [tables.startNT]
    var out: [String] = []
    func flush() {
      while let top = stack.last, top < 0 {
        out.append(terminals[Int(~top)])
        stack.removeLast()
      }
    }
    for (step, p) in sequence.enumerated() {
      guard p >= 0 && p < productions.count else { throw .unknownProduction(p, step: step) }
      flush()
      guard let top = stack.last else {
        guard p == paddingProduction else {
          throw .notAllowed(
            production: p, step: step,
            expectedLHS: paddingProduction >= 0 ? productions[paddingProduction].lhs : "")
        }
        continue
      }
      guard usable[p] else { throw .maskedProduction(p, step: step) }
      guard lhsID[p] == top else {
        throw .notAllowed(production: p, step: step, expectedLHS: symbolName(top))
      }
      stack.removeLast()
      stack.append(contentsOf: rhsIDs[p].reversed())
    }
    flush()
    if !stack.isEmpty {
      throw .incomplete(steps: sequence.count, pending: stack.reversed().map(symbolName))
    }
    return out
  }

  func symbolName(_ s: Int32) -> String {
    if s < 0 { return quoted(terminals[Int(~s)]) }
    let i = Int(s)
    return i < nonterminals.count ? nonterminals[i] : undefinedSymbols[i - nonterminals.count]
  }
}
