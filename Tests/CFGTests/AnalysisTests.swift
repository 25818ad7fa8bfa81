import Testing

@testable import CFG

@Suite struct AnalysisTests {
  /// The fewest steps each production commits to (S needs 2: S -> T, T -> 'x'; T needs 1).
  @Test func stepsToFinishEquation() throws {
    let g = try Grammar.named("equation")
    #expect(g.shortestDerivation == 2)
    let expected = [4, 4, 4, 2, 3, 3, 3, 1, 1, 1, 1, 1]
    #expect((0..<12).map { g.stepsToFinish(production: $0) } == expected)
    #expect(g.stepsToFinish(production: -1) == Int.max)
    #expect(g.stepsToFinish(production: 12) == Int.max)
    // Masked (unusable) ZINC productions can never finish.
    let zinc = try Grammar.named("zinc")
    #expect(zinc.stepsToFinish(production: 29) == Int.max)
    #expect(zinc.stepsToFinish(production: 30) < Int.max)
  }

  @Test func zincAnalysis() throws {
    let g = try Grammar.named("zinc")
    #expect(g.startSymbol == "smiles")
    #expect(g.undefinedSymbols == ["class"])
    #expect(g.maskedProductions == [29, 31])
    #expect(g.nonproductiveSymbols.isEmpty)
    #expect(g.unreachableSymbols.isEmpty)
    #expect(g.paddingProduction == 75)
    #expect(g.maxLength == 277)
    #expect(g.separator == "")
    #expect(g.terminals.contains("\\"))
    #expect(g.warnings.count == 3)
    let (rows, cols) = g.maskShape
    #expect(cols == 76)
    #expect(rows == g.nonterminals.count)
    let mask = g.maskMatrix()
    let bach = try #require(g.nonterminals.firstIndex(of: "BACH"))
    #expect(
      mask[bach * cols + 29] == 0 && mask[bach * cols + 31] == 0 && mask[bach * cols + 30] == 1)
    // Each usable production appears in exactly its own row.
    for p in 0..<cols {
      let column = (0..<rows).map { mask[$0 * cols + p] }
      #expect(column.reduce(0, +) == (g.isUsable(p) ? 1 : 0))
      #expect(g.nonterminals[g.lhsIndexOfProduction[p]] == g.productions[p].lhs)
    }
  }

  @Test func equationAnalysis() throws {
    let g = try Grammar.named("equation")
    #expect(g.nonterminals == ["S", "T", "Nothing"])
    #expect(g.paddingProduction == 11)
    #expect(g.paddingLHS == 2)
    #expect(g.maskedProductions.isEmpty && g.warnings.isEmpty)
    #expect(g.maxLength == 15 && g.separator == " ")
  }

  @Test func formatFeatures() throws {
    let g = try Grammar(
      text: """
        # comment
        %start E
        A -> 'x'   # trailing comment
        E -> E "+" A | A | None
        B -> A
        """)
    #expect(g.startSymbol == "E")
    #expect(
      g.productions.map(\.description) == [
        "A -> 'x'", "E -> E '+' A", "E -> A", "E -> None", "B -> A",
      ])
    #expect(g.unreachableSymbols == ["B"])
    #expect(g.paddingProduction == 3)
    #expect(g.warnings.map(\.message) == ["non-terminal B is unreachable from the start symbol E"])
  }

  @Test func leftRecursionWithoutBaseCaseIsAnError() {
    do {
      _ = try Grammar(text: "S -> S 'a'\n", name: "bad.cfg")
      Issue.record("expected an error")
    } catch {
      #expect(error.location == TextLocation(line: 1, column: 1, offset: 0))
      #expect(error.message.contains("derives no terminal string"))
      #expect(error.description.contains("bad.cfg:1:1"))
    }
  }

  struct BadGrammar: Sendable, CustomTestStringConvertible {
    let text: String
    let line: Int
    let column: Int
    let message: String
    var testDescription: String { text }
  }

  @Test(arguments: [
    BadGrammar(text: "S -> 'a\n", line: 1, column: 6, message: "unterminated"),
    BadGrammar(text: "S -> 'a'\nT 'b'\n", line: 2, column: 3, message: "expected '->'"),
    BadGrammar(text: "S -> 'a' ; 'b'\n", line: 1, column: 10, message: "unexpected character"),
    BadGrammar(text: "-> 'a'\n", line: 1, column: 1, message: "expected a non-terminal"),
    BadGrammar(text: "# nothing\n", line: 1, column: 1, message: "no productions"),
    BadGrammar(text: "S -> A\n", line: 1, column: 1, message: "derives no terminal string"),
    BadGrammar(text: "S -> 'a' None\n", line: 1, column: 10, message: "None must stand alone"),
  ])
  func syntaxErrors(_ c: BadGrammar) {
    do {
      _ = try Grammar(text: c.text, name: "g.cfg")
      Issue.record("expected an error")
    } catch {
      #expect(error.location.line == c.line)
      #expect(error.location.column == c.column)
      #expect(error.message.contains(c.message), "\(error.message)")
    }
  }

  @Test func errorDescriptionShowsLineAndCaret() {
    do {
      _ = try Grammar(text: "S -> 'a'\nT -> 'b' ; \n", name: "g.cfg")
      Issue.record("expected an error")
    } catch {
      #expect(
        error.description
          == "g.cfg:2:10: unexpected character; expected a non-terminal name, a quoted terminal or '|'\n  T -> 'b' ; \n           ^"
      )
    }
  }

  @Test func missingFileIsAnError() {
    #expect(throws: GrammarError.self) { try Grammar.named("/nonexistent/grammar.cfg") }
  }
}
