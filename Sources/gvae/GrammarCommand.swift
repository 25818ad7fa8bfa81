import ArgumentParser
import CFG

struct GrammarCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "grammar",
    abstract: "Inspect grammars.",
    subcommands: [Show.self])

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List the numbered productions and what the analysis found.")

    @OptionGroup var grammarOption: GrammarOption

    func run() throws {
      let g = try grammarOption.load()
      let out = OutputBuffer()
      out.write(
        "grammar \(g.name): \(g.productions.count) productions, start symbol \(g.startSymbol)\n")
      let masked = Set(g.maskedProductions)
      let width = String(g.productions.count - 1).count
      for (i, p) in g.productions.enumerated() {
        let number = String(repeating: " ", count: width - String(i).count) + String(i)
        var line = "\(number)  \(p)"
        if masked.contains(i) { line += "    [masked: can never complete]" }
        if i == g.paddingProduction { line += "    [padding]" }
        out.write(line + "\n")
      }
      func list(_ xs: [String]) -> String { xs.isEmpty ? "none" : xs.joined(separator: " ") }
      out.write("mask rows (\(g.nonterminals.count)): \(list(g.nonterminals))\n")
      out.write("terminals (\(g.terminals.count)): \(list(g.terminals.map { "'\($0)'" }))\n")
      out.write("undefined non-terminals: \(list(g.undefinedSymbols))\n")
      out.write("non-productive non-terminals: \(list(g.nonproductiveSymbols))\n")
      out.write("masked productions: \(list(g.maskedProductions.map(String.init)))\n")
      out.write("unreachable non-terminals: \(list(g.unreachableSymbols))\n")
      out.write(
        "padding production: \(g.paddingProduction >= 0 ? String(g.paddingProduction) : "none")\n")
      out.write("max length: \(g.maxLength)\n")
      out.write("separator: \"\(g.separator)\"\n")
      for w in g.warnings { out.write(w.description + "\n") }
      out.flush()
    }
  }
}
