import ArgumentParser
import Chemistry
import Foundation
import NN

struct CheckCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Check SMILES strings: syntax, ring closures, valences, aromaticity (RDKit's rules).",
    discussion: """
      Usage: gvae check [--format text|json] [SMILES ...]

      With no strings, reads one per line from stdin and prints each result as soon as the \
      line arrives. Text prints `ok` or `error: column C, atom A (X): RULE: message` per \
      input; --format json prints {"input", "valid", "atoms", "rings", "heavy_atoms"} or \
      {"input", "valid": false, "error": {"rule", "column", "atom", "element", "message"}} \
      per line. Rules: syntax, ringClosure, valence, aromaticity. Exit status: 0 when all \
      inputs are valid, 1 when some are not, 2 on usage errors. A string starting with '-' \
      is taken for an option: pass such input on stdin.
      """)

  // Options are parsed here rather than by ArgumentParser so that every usage error exits
  // 2 (ArgumentParser's validation errors exit 64).
  @Argument(parsing: .allUnrecognized, help: "--format text|json, then SMILES strings (default: stdin).")
  var arguments: [String] = []

  func run() throws {
    var json = false
    var strings: [String] = []
    var k = 0
    var onlyStrings = false
    while k < arguments.count {
      let a = arguments[k]
      k += 1
      if onlyStrings || !a.hasPrefix("-") || a == "-" {
        strings.append(a)
        continue
      }
      if a == "--" {
        onlyStrings = true
        continue
      }
      var value: String? = nil
      if a == "--format" {
        guard k < arguments.count else { throw fail("--format needs a value: text or json", code: 2) }
        value = arguments[k]
        k += 1
      } else if a.hasPrefix("--format=") {
        value = String(a.dropFirst("--format=".count))
      } else {
        throw fail("unknown option '\(a)' (see gvae check --help)", code: 2)
      }
      switch value {
      case "text": json = false
      case "json": json = true
      default: throw fail("--format must be text or json, not '\(value ?? "")'", code: 2)
      }
    }

    var items = InputItems(strings)
    let streaming = strings.isEmpty
    let out = OutputBuffer()
    var invalid = 0
    while let s = items.next() {
      let result = SMILES.check(s)
      if case .invalid = result { invalid += 1 }
      out.write(json ? jsonLine(s, result) : textLine(result))
      if streaming { out.flush() }
    }
    out.flush()
    if invalid > 0 { throw fail("\(invalid) of \(items.count) inputs are not valid SMILES", code: 1) }
  }

  func textLine(_ r: SMILESCheck) -> String {
    switch r {
    case .valid: return "ok\n"
    case .invalid(let e): return "error: \(e)\n"
    }
  }

  func jsonLine(_ s: String, _ r: SMILESCheck) -> String {
    switch r {
    case .valid(let m):
      let heavy = m.heavyAtomCounts.sorted { $0.key < $1.key }
        .map { "\(jsonString($0.key)): \($0.value)" }.joined(separator: ", ")
      return "{\"input\": \(jsonString(s)), \"valid\": true, \"atoms\": \(m.atomCount), "
        + "\"rings\": \(m.ringCount), \"heavy_atoms\": {\(heavy)}}\n"
    case .invalid(let e):
      let atom = e.atom.map(String.init) ?? "null"
      let element = e.element.map(jsonString) ?? "null"
      return "{\"input\": \(jsonString(s)), \"valid\": false, \"error\": {\"rule\": \"\(e.rule.rawValue)\", "
        + "\"column\": \(e.column), \"atom\": \(atom), \"element\": \(element), "
        + "\"message\": \(jsonString(e.message))}}\n"
    }
  }
}
