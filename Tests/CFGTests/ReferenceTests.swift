import Testing

@testable import CFG

struct ReferenceCase: Sendable, CustomTestStringConvertible {
  let grammar: String
  let input: String
  let expected: [Int]
  var testDescription: String { "\(grammar): \(input)" }
}

/// Reference sequences from REFERENCE.md §1 (checked with the paper's parser).
let referenceCases: [ReferenceCase] = [
  ReferenceCase(grammar: "zinc", input: "CC", expected: [0, 73, 72, 62, 2, 5, 62, 2, 5]),
  ReferenceCase(
    grammar: "zinc", input: "c1ccccc1",
    expected: [
      0, 73, 73, 73, 73, 73, 72, 63, 3, 14, 67, 60, 37, 62, 3, 14, 62, 3, 14, 62, 3, 14, 62, 3,
      14, 63, 3, 14, 67, 60, 37,
    ]),
  ReferenceCase(
    grammar: "equation", input: "1/3+x+sin(x*x)", expected: [0, 0, 2, 3, 8, 10, 7, 5, 1, 3, 7, 7]),
  ReferenceCase(grammar: "equation", input: "x/3", expected: [2, 3, 7, 10]),
]

@Test(arguments: referenceCases)
func referenceSequence(_ c: ReferenceCase) throws {
  let g = try Grammar.named(c.grammar)
  #expect(try g.parse(c.input) == c.expected)
}

@Test func spacedAndCompactExpressionsTokenizeAlike() throws {
  let g = try Grammar.named("equation")
  #expect(try g.parse("x + ( 1 )") == g.parse("x+(1)"))
  #expect(try g.derive(g.parse("1/3+x+sin(x*x)")) == "1 / 3 + x + sin( x * x )")
  #expect(try g.derive(g.parse("1/3+x+sin(x*x)"), separator: "") == "1/3+x+sin(x*x)")
}
