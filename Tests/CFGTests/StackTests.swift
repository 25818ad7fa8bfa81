import Testing

@testable import CFG

@Suite struct StackTests {
  /// Every production of a true derivation is allowed by the stack mask at its step, and the
  /// stack is complete exactly at the end (then only padding is allowed).
  @Test(arguments: ["zinc", "equation"])
  func trueProductionsAreAllowed(_ name: String) throws {
    let g = try Grammar.named(name)
    var stack = DerivationStack(grammar: g)
    for c in try goldenCases("\(name).txt") {
      stack.reset()
      let seq = try g.encode(c.input)
      for (t, p) in seq.enumerated() {
        let p = Int(p)
        #expect(stack.isAllowed(p), "\(c.input) step \(t)")
        #expect(stack.allowedMask[p] == 1)
        #expect(stack.currentLHS == g.lhsIndexOfProduction[p])
        try stack.apply(production: p)
      }
      #expect(stack.isComplete)
      #expect(stack.currentLHS == g.paddingLHS)
    }
  }

  @Test func disallowedProductionsThrow() throws {
    let g = try Grammar.named("zinc")
    var stack = DerivationStack(grammar: g)
    #expect(throws: DerivationError.notAllowed(production: 5, step: 0, expectedLHS: "smiles")) {
      try stack.apply(production: 5)
    }
    #expect(throws: DerivationError.unknownProduction(76, step: 0)) {
      try stack.apply(production: 76)
    }
    try stack.apply(production: 0)
    try stack.apply(production: 72)
    try stack.apply(production: 62)
    try stack.apply(production: 1)
    try stack.apply(production: 18)
    try stack.apply(production: 19)
    try stack.apply(production: 34)
    try stack.apply(production: 37)
    try stack.apply(production: 32)
    try stack.apply(production: 5)
    try stack.apply(production: 24)
    try stack.apply(production: 27)
    #expect(stack.currentLHS == g.nonterminals.firstIndex(of: "BACH"))
    #expect(throws: DerivationError.maskedProduction(29, step: 12)) {
      try stack.apply(production: 29)
    }
    #expect(stack.pending == ["BACH"])
  }

  @Test func batchMatchesSingleStacks() throws {
    let g = try Grammar.named("equation")
    let cases = try goldenCases("equation.txt").prefix(64)
    let seqs = try cases.map { try g.encode($0.input) }
    var batch = StackBatch(grammar: g, batchSize: seqs.count)
    var singles = seqs.map { _ in DerivationStack(grammar: g) }
    var logits = [Float](repeating: 0, count: seqs.count * g.productions.count)
    for t in 0..<g.maxLength {
      for b in 0..<seqs.count { #expect(batch.currentLHS(b) == singles[b].currentLHS) }
      logits.withUnsafeMutableBufferPointer { batch.maskLogits($0) }
      for b in 0..<seqs.count {
        #expect(logits[b * g.productions.count + Int(seqs[b][t])] == 0)
      }
      for i in logits.indices { logits[i] = 0 }
      try batch.apply(seqs.map { Int($0[t]) })
      for b in 0..<seqs.count { try singles[b].apply(production: Int(seqs[b][t])) }
    }
    #expect(batch.allComplete)
  }

  @Test func deriveRejectsIncompleteAndWrongSequences() throws {
    let g = try Grammar.named("zinc")
    #expect(
      throws: DerivationError.incomplete(steps: 3, pending: ["branched_atom", "branched_atom"])
    ) {
      try g.derive([0, 73, 72])
    }
    #expect(throws: DerivationError.notAllowed(production: 5, step: 1, expectedLHS: "chain")) {
      try g.derive([0, 5])
    }
    #expect(throws: DerivationError.notAllowed(production: 0, step: 9, expectedLHS: "Nothing")) {
      try g.derive([0, 73, 72, 62, 2, 5, 62, 2, 5, 0])
    }
    #expect(try g.derive([0, 73, 72, 62, 2, 5, 62, 2, 5, 75, 75]) == "CC")
  }

  @Test func oneHot() throws {
    let g = try Grammar.named("equation")
    let seq = try g.encode("x/3")
    var buffer = [Float](repeating: 7, count: 15 * 12)
    buffer.withUnsafeMutableBufferPointer { g.oneHot(seq, into: $0) }
    #expect(buffer.reduce(0, +) == 15)
    #expect(buffer[0 * 12 + 2] == 1 && buffer[3 * 12 + 10] == 1 && buffer[14 * 12 + 11] == 1)
  }
}
