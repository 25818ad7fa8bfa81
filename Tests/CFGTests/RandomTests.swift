import Engine
import Testing

@testable import CFG

@Suite struct RandomTests {
  /// Random mask-respecting derivations fit the limit, derive a string, and re-parse to the
  /// same sequence (parse ∘ derive is the identity on derivations).
  @Test(arguments: [("equation", 15, UInt64(1)), ("zinc", 277, UInt64(2)), ("zinc", 60, UInt64(3))])
  func randomDerivationsReparse(_ name: String, _ maxLength: Int, _ seed: UInt64) throws {
    let g = try Grammar.named(name)
    let parser = Parser(grammar: g)
    var rng = SeededRandom(seed: seed)
    for _ in 0..<300 {
      let d = try g.randomDerivation(maxLength: maxLength, terminationBias: 0.2, using: &rng)
      #expect(d.count <= maxLength, "seed \(seed)")
      var stack = DerivationStack(grammar: g)
      for p in d { try stack.apply(production: p) }
      #expect(stack.isComplete)
      let s = try g.derive(d)
      #expect(try parser.parse(s) == d, "seed \(seed): \(s)")
    }
  }

  @Test func distinctStringsAreSeeded() throws {
    let g = try Grammar.named("equation")
    var a = SeededRandom(seed: 7)
    var b = SeededRandom(seed: 7)
    let x = try g.randomStrings(count: 200, maxLength: 15, using: &a)
    let y = try g.randomStrings(count: 200, maxLength: 15, using: &b)
    #expect(x == y)
    #expect(Set(x).count == 200)
  }

  @Test func impossibleRequestsThrow() throws {
    let g = try Grammar.named("equation")
    var rng = SeededRandom(seed: 1)
    #expect(throws: GenerationError.maxLengthTooSmall(maxLength: 1, shortest: 2)) {
      try g.randomStrings(count: 1, maxLength: 1, using: &rng)
    }
    #expect(throws: GenerationError.self) {
      try g.randomStrings(count: 100, maxLength: 2, using: &rng)
    }
  }
}
