import Foundation
import Testing

@testable import CFG

@Suite struct GoldenTests {
  /// Reference sequences from NLTK's chart parser (tools/make_golden.sh).
  @Test(arguments: ["zinc", "equation"])
  func matchesNLTK(_ name: String) throws {
    let g = try Grammar.named(name)
    let parser = Parser(grammar: g)
    let cases = try goldenCases("\(name).txt")
    #expect(cases.count == 300)
    for c in cases {
      let got = try parser.parse(c.input).map(String.init).joined(separator: " ")
      #expect(got == c.expected, "\(c.input)")
    }
  }

  /// Long molecules and ones with charges, isotopes, `@@`, `/` and `\\` bonds.
  @Test func matchesNLTKOnHardMolecules() throws {
    let g = try Grammar.named("zinc")
    let parser = Parser(grammar: g)
    let cases = try goldenCases("zinc_hard.txt")
    #expect(cases.count == 100)
    for c in cases {
      let d = try parser.parse(c.input)
      #expect(d.map(String.init).joined(separator: " ") == c.expected, "\(c.input)")
      #expect(try g.derive(d) == c.input)
      #expect(d.count <= g.maxLength)
    }
  }

  /// derive(parse(s)) == s: SMILES exactly; expressions as the data set spaces them.
  @Test(arguments: ["zinc", "equation"])
  func roundTrip(_ name: String) throws {
    let g = try Grammar.named(name)
    let parser = Parser(grammar: g)
    for c in try goldenCases("\(name).txt") {
      #expect(try g.derive(parser.parse(c.input)) == c.input)
    }
  }

  /// Production order is the model contract: pin it.
  @Test(arguments: ["zinc", "equation"])
  func productionOrder(_ name: String) throws {
    let g = try Grammar.named(name)
    let text = g.productions.enumerated().map { "\($0.offset)\t\($0.element)\n" }.joined()
    expectGolden(text, file: "\(name).productions.txt")
    #expect(g.productions.count == (name == "zinc" ? 76 : 12))
  }

  /// The embedded grammar texts equal the files in Grammars/ byte for byte.
  @Test(arguments: ShippedGrammar.all.map(\.name))
  func embeddedGrammarMatchesFile(_ name: String) throws {
    let url = packageRoot.appendingPathComponent("Grammars/\(name).cfg")
    let file = try Data(contentsOf: url)
    let shipped = try #require(ShippedGrammar.all.first { $0.name == name })
    #expect(Data(shipped.text.utf8) == file, "run tools/embed_grammars.sh")
  }

  @Test func committedSamplesParseAndRoundTrip() throws {
    for (name, file) in [("zinc", "zinc_sample.smi"), ("equation", "equation_sample.txt")] {
      let g = try Grammar.named(name)
      let lines = try sampleLines(file)
      #expect(lines.count >= 200)
      let batch = g.encodeAll(lines)
      #expect(batch.failures.isEmpty)
      for (i, s) in lines.enumerated() {
        let row = batch.indices[(i * batch.maxLength)..<((i + 1) * batch.maxLength)]
        #expect(try g.derive(row.map { Int($0) }) == s)
      }
    }
  }
}
