// Shipped grammars and grammar files (Foundation at the edge: file reading).
import Foundation

/// A grammar that ships inside the binary, with its model defaults.
public struct ShippedGrammar: Sendable {
  public let name: String
  /// The text of `Grammars/<name>.cfg`, byte for byte.
  public let text: String
  public let maxLength: Int
  public let separator: String

  /// `zinc` (SMILES, MAX_LEN 277) and `equation` (expressions, MAX_LEN 15), the paper's;
  /// `zinc-rr`, ZINC's language in shorter derivations (MAX_LEN 200; ZINC's longest is 197).
  public static let all: [ShippedGrammar] = [
    ShippedGrammar(name: "zinc", text: ShippedGrammarText.zinc, maxLength: 277, separator: ""),
    ShippedGrammar(
      name: "equation", text: ShippedGrammarText.equation, maxLength: 15, separator: " "),
    ShippedGrammar(
      name: "zinc-rr", text: ShippedGrammarText.zinc_rr, maxLength: 200, separator: ""),
  ]
}

extension Grammar {
  /// A shipped grammar by name (`zinc`, `equation`, `zinc-rr`), or else a grammar file at that path.
  /// - Throws: `GrammarError` when the file cannot be read or is not a valid grammar.
  public static func named(_ nameOrPath: String) throws(GrammarError) -> Grammar {
    if let shipped = ShippedGrammar.all.first(where: { $0.name == nameOrPath }) {
      return try Grammar(
        text: shipped.text, name: shipped.name, maxLength: shipped.maxLength,
        separator: shipped.separator)
    }
    return try Grammar(contentsOfFile: nameOrPath)
  }

  /// Loads a grammar file (default maximum length 100, separator "").
  public init(contentsOfFile path: String, maxLength: Int = 100, separator: String = "")
    throws(GrammarError)
  {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      let known = ShippedGrammar.all.map(\.name).joined(separator: ", ")
      throw GrammarError(
        file: path, location: TextLocation(line: 0, column: 0),
        message: "cannot read grammar file (expected a readable file or one of: \(known))",
        lineText: "")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw GrammarError(
        file: path, location: TextLocation(line: 0, column: 0),
        message: "grammar file is not UTF-8 text", lineText: "")
    }
    try self.init(
      text: text, name: (path as NSString).lastPathComponent, maxLength: maxLength,
      separator: separator)
  }
}
