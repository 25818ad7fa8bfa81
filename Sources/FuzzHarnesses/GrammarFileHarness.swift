// Grammar files: the reader, the analysis, the decoder tables and a few parses with the result.
import CFG
import Engine
import Foundation

enum GrammarFileHarness {
  static let name = "grammar-file"

  static func run(_ data: Data) throws(HarnessFailure) {
    // Through the file reader the tool uses (`--grammar PATH`), UTF-8 check included.
    let path = ScratchDirectory.write(data, name: "grammar.cfg")
    let g: Grammar
    do { g = try Grammar(contentsOfFile: path, maxLength: 40) } catch {
      rejected(name, error)
      return
    }
    for w in g.warnings { _ = w.description }
    guard !g.productions.isEmpty, g.productions.count <= data.count else {
      throw fail(name, "\(g.productions.count) productions from \(data.count) bytes")
    }
    guard g.nonterminals.contains(g.startSymbol), g.startLHS < g.nonterminals.count else {
      throw fail(name, "start symbol \(g.startSymbol) is not a mask row")
    }

    // Masks: one row per non-terminal, and each usable production in its own row only.
    let mask = g.maskMatrix()
    let (rows, columns) = g.maskShape
    guard mask.count == rows * columns, columns == g.productions.count else {
      throw fail(name, "mask has \(mask.count) entries for shape \(rows)×\(columns)")
    }
    let lhsOf = g.lhsIndexOfProduction
    for p in 0..<columns {
      let column = (0..<rows).filter { mask[$0 * columns + p] != 0 }
      let want = g.isUsable(p) ? [lhsOf[p]] : []
      guard column == want else {
        throw fail(name, "mask column \(p) has rows \(column), expected \(want)")
      }
    }
    var stack = DerivationStack(grammar: g)
    guard stack.currentLHS == g.startLHS, stack.allowedMask.count == columns else {
      throw fail(name, "a new stack does not start at the start symbol")
    }
    var batch = StackBatch(grammar: g, batchSize: 2)
    var logits = [Float](repeating: 0, count: 2 * columns)
    logits.withUnsafeMutableBufferPointer { batch.maskLogits($0) }

    let parser = Parser(grammar: g)
    // A few fixed strings: empty, each of the first terminals, the first two together.
    var inputs = ["", " "] + g.terminals.prefix(3)
    if g.terminals.count >= 2 { inputs.append(g.terminals[0] + g.terminals[1]) }
    for s in inputs { try ParseHarness.check(s, g, parser, name) }

    // Random derivations must derive, drive both stacks, and parse back.
    var rng = SeededRandom(seed: UInt64(truncatingIfNeeded: data.hashValueStable))
    for k in 0..<3 {
      let d: [Int]
      do {
        d = try g.randomDerivation(maxLength: g.maxLength, terminationBias: 0.3, using: &rng)
      } catch {
        guard g.shortestDerivation > g.maxLength else {
          throw fail(name, "random derivation: \(error) (shortest \(g.shortestDerivation))")
        }
        break
      }
      guard d.count <= g.maxLength else {
        throw fail(name, "random derivation of \(d.count) steps, limit \(g.maxLength)")
      }
      try ParseHarness.checkStack(d, g, name)
      stack.reset()
      batch.reset()
      do {
        for p in d {
          try stack.apply(production: p)
          try batch.apply([p, p])
        }
      } catch {
        throw fail(name, "random derivation \(d) does not fit the default stacks: \(error)")
      }
      guard stack.isComplete, batch.allComplete else {
        throw fail(name, "random derivation \(d) leaves the default stacks unfinished")
      }
      let terminals: [String]
      do { terminals = try g.derivedTerminals(d) } catch {
        throw fail(name, "random derivation \(d) does not derive: \(error)")
      }
      let s = terminals.joined(separator: g.separator)
      // Only when the tokenizer splits the string back into the same terminals (longest
      // match can merge neighbours such as 'a' 'ab') must it parse.
      guard let tokens = try? g.tokenize(s), tokens.map({ g.terminals[$0.terminal] }) == terminals
      else { continue }
      if terminals.isEmpty { continue }  // empty input is an error by design
      do { _ = try parser.parse(s) } catch {
        throw fail(name, "derivation \(k) string \(s.debugDescription) does not parse: \(error)")
      }
      try ParseHarness.check(s, g, parser, name)
    }
  }
}

extension Data {
  /// FNV-1a of the bytes: the same seed for the same input in every process.
  var hashValueStable: UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in self {
      h ^= UInt64(b)
      h &*= 0x100_0000_01b3
    }
    return h
  }
}
