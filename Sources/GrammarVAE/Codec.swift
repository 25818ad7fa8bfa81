// Strings ⇄ index sequences for both model kinds.
import CFG

/// Turns strings into padded index sequences and back, for a grammar or a character model.
///
/// Grammar models use the leftmost derivation padded with the padding production; character
/// models use one index per character padded with index 0 (the padding character).
public struct SequenceCodec: @unchecked Sendable {
  public let kind: ModelKind
  public let steps: Int
  public let grammar: Grammar
  /// Characters by index (character models); index 0 is padding.
  public let characters: [Character]
  let characterIndex: [Character: Int32]
  let stripWhitespace: Bool
  let parser: Parser

  /// - Parameters:
  ///   - grammar: used for parsing (grammar models) and for validity checks (both kinds).
  public init(configuration c: ModelConfiguration, grammar: Grammar) {
    kind = c.kind
    steps = c.steps
    self.grammar = grammar
    characters = c.characters.map { $0.first ?? " " }
    var index: [Character: Int32] = [:]
    for (i, ch) in characters.enumerated() where i > 0 { index[ch] = Int32(i) }
    characterIndex = index
    stripWhitespace = c.stripWhitespace
    parser = Parser(grammar: grammar)
  }

  /// A fresh codec with its own parser scratch space (one per thread).
  public func copy() -> SequenceCodec {
    SequenceCodec(
      kind: kind, steps: steps, grammar: grammar, characters: characters,
      characterIndex: characterIndex, stripWhitespace: stripWhitespace)
  }

  init(
    kind: ModelKind, steps: Int, grammar: Grammar, characters: [Character],
    characterIndex: [Character: Int32], stripWhitespace: Bool
  ) {
    self.kind = kind
    self.steps = steps
    self.grammar = grammar
    self.characters = characters
    self.characterIndex = characterIndex
    self.stripWhitespace = stripWhitespace
    self.parser = Parser(grammar: grammar)
  }

  /// The padding index: the padding production, or character 0.
  public var paddingIndex: Int32 {
    kind == .grammar ? Int32(grammar.paddingProduction) : 0
  }

  /// The canonical form of an input string (what reconstruction compares against).
  ///
  /// Character models: the trimmed string (whitespace removed with `stripWhitespace`). Grammar
  /// models: the string the grammar derives from its parse (tokens joined by the grammar's
  /// separator, so `x+1` and `x + 1` compare equal), or the trimmed string when it does not parse.
  public func canonical(_ s: String) -> String {
    let t = s.trimmingWhitespace()
    if kind == .character {
      return stripWhitespace ? String(t.filter { !$0.isWhitespace }) : t
    }
    if grammar.separator.isEmpty { return t }
    guard let d = try? parser.parse(t), let r = try? grammar.derive(d) else { return t }
    return r
  }

  /// The padded index sequence and its true length.
  /// - Throws: `SequenceError` for an unparseable string, an unknown character or one too long.
  public func encode(_ s: String) throws(SequenceError) -> (sequence: [Int32], length: Int) {
    let input = canonical(s)
    switch kind {
    case .grammar:
      var out: [Int32] = []
      do {
        try parser.parse(input, into: &out)
      } catch {
        throw .parse(error)
      }
      guard out.count <= steps else { throw .tooLong(length: out.count, maxLength: steps) }
      let n = out.count
      guard paddingIndex >= 0 || n == steps else { throw .parse(.noPadding) }
      out.append(contentsOf: repeatElement(paddingIndex, count: steps - n))
      return (out, n)
    case .character:
      guard !input.isEmpty else { throw .empty }
      var out: [Int32] = []
      out.reserveCapacity(steps)
      for (k, ch) in input.enumerated() {
        guard let i = characterIndex[ch] else { throw .unknownCharacter(ch, column: k + 1) }
        out.append(i)
      }
      guard out.count <= steps else { throw .tooLong(length: out.count, maxLength: steps) }
      let n = out.count
      out.append(contentsOf: repeatElement(0, count: steps - n))
      return (out, n)
    }
  }

  /// The string a character sequence spells: characters up to the first padding index.
  public func characterString(_ sequence: some Collection<Int32>) -> String {
    var s = ""
    for i in sequence {
      if i == 0 { break }
      s.append(characters[Int(i)])
    }
    return s
  }

  /// Whether `s` parses with the grammar (any model kind).
  public func isGrammarValid(_ s: String) -> Bool {
    guard !s.isEmpty else { return false }
    var out: [Int32] = []
    return (try? parser.parse(s, into: &out)) != nil
  }

  /// The character vocabulary of a set of strings: padding (a space) first, then the
  /// characters sorted by code point.
  public static func characterVocabulary(_ strings: some Sequence<String>, stripWhitespace: Bool)
    -> [String]
  {
    var set = Set<Character>()
    for s in strings {
      for ch in s.trimmingWhitespace() where !(stripWhitespace && ch.isWhitespace) {
        set.insert(ch)
      }
    }
    set.remove(" ")
    return [" "]
      + set.sorted {
        String($0).unicodeScalars.first!.value < String($1).unicodeScalars.first!.value
      }
      .map { String($0) }
  }
}

/// Why a string has no encoding.
public enum SequenceError: Error, Equatable, Sendable, CustomStringConvertible {
  case parse(ParseError)
  case tooLong(length: Int, maxLength: Int)
  case unknownCharacter(Character, column: Int)
  case empty

  public var description: String {
    switch self {
    case .parse(let e): return e.summary
    case .tooLong(let length, let maxLength):
      return "encoding has \(length) steps, more than the model's \(maxLength)"
    case .unknownCharacter(let ch, let column):
      return "column \(column): character '\(ch)' is not in the model's vocabulary"
    case .empty: return "empty input"
    }
  }
}

extension String {
  func trimmingWhitespace() -> String {
    var s = Substring(self)
    while let f = s.first, f.isWhitespace { s.removeFirst() }
    while let l = s.last, l.isWhitespace { s.removeLast() }
    return String(s)
  }
}
