import Testing

@testable import CFG

@Suite struct ParserTests {
  let zinc: Grammar
  let equation: Grammar
  init() throws {
    zinc = try Grammar.named("zinc")
    equation = try Grammar.named("equation")
  }

  @Test func tokenizerLongestMatch() throws {
    let tokens = try zinc.tokenize("ClC[C@@H]Br").map { zinc.terminals[$0.terminal] }
    #expect(tokens == ["Cl", "C", "[", "C", "@@", "H", "]", "Br"])
    let e = try equation.tokenize("sin(x) + exp( 1 )").map { equation.terminals[$0.terminal] }
    #expect(e == ["sin(", "x", ")", "+", "exp(", "1", ")"])
    #expect(try zinc.tokenize("[nH]").map { zinc.terminals[$0.terminal] } == ["[", "n", "H", "]"])
  }

  @Test func unknownCharacter() {
    #expect(
      throws: ParseError.unexpectedCharacter(
        "%", at: TextLocation(line: 1, column: 3, offset: 2), input: "CC%")
    ) {
      try zinc.parse("CC%")
    }
  }

  @Test func unexpectedTokenNamesColumnAndExpected() throws {
    do {
      _ = try equation.parse("x + + 1")
      Issue.record("expected an error")
    } catch {
      guard case .unexpectedToken(let t, let at, let expected, _) = error else {
        Issue.record("wrong error \(error)")
        return
      }
      #expect(t == "+")
      #expect(at.column == 5)
      #expect(expected == ["(", "1", "2", "3", "exp(", "sin(", "x"])
      #expect(error.description.hasSuffix("  x + + 1\n      ^"))
    }
  }

  @Test func unbalancedAndEmpty() {
    #expect(throws: ParseError.self) { try zinc.parse("C(C") }
    #expect(throws: ParseError.emptyInput) { try zinc.parse("") }
    #expect(throws: ParseError.emptyInput) { try equation.parse("   ") }
    do {
      _ = try equation.parse("(x")
    } catch {
      guard case .unexpectedEnd(let at, let expected, _) = error else {
        Issue.record("wrong error \(error)")
        return
      }
      #expect(at.column == 3)
      #expect(expected == [")", "*", "+", "/"])
    }
  }

  @Test func tooLongGivesBothLengths() throws {
    #expect(throws: ParseError.tooLong(length: 9, maxLength: 5)) {
      try zinc.encode("CC", maxLength: 5)
    }
    let row = try zinc.encode("CC")
    #expect(row.count == 277)
    #expect(row[9...].allSatisfy { $0 == 75 })
  }

  @Test func userGrammarWithLeftRecursionNullablesAndAmbiguity() throws {
    // Ambiguous: two trees for "aaa".
    let amb = try Grammar(text: "S -> S S | 'a'\n")
    let r = try Parser(grammar: amb).parseReportingAmbiguity("aaa")
    #expect(r.isAmbiguous)
    #expect(try amb.derive(r.productions) == "aaa")
    let single = try Parser(grammar: amb).parseReportingAmbiguity("a")
    #expect(!single.isAmbiguous)
    // Nullable symbols in the middle and at the edges.
    let nul = try Grammar(text: "S -> A 'x' A\nA -> None | A 'y'\n")
    for s in ["x", "yx", "xyy", "yyxy"] {
      let d = try nul.parse(s)
      #expect(try nul.derive(d) == s)
      #expect(!(try Parser(grammar: nul).parseReportingAmbiguity(s).isAmbiguous))
    }
    // Right and left recursion on long input, no stack overflow.
    let deep = try Grammar(text: "S -> '(' S ')' | 'x'\n")
    let s = String(repeating: "(", count: 5000) + "x" + String(repeating: ")", count: 5000)
    let d = try deep.parse(s)
    #expect(d.count == 5001)
    #expect(try deep.derive(d) == s)
    let long = String(repeating: "C", count: 3000)
    #expect(try zinc.derive(zinc.parse(long)) == long)
  }

  @Test func parserIsReusable() throws {
    let p = Parser(grammar: zinc)
    let a = try p.parse("CC(=O)O")
    #expect(throws: ParseError.self) { try p.parse("C(") }
    #expect(try p.parse("CC(=O)O") == a)
  }
}
