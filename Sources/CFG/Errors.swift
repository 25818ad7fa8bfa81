// Positioned, typed errors for grammar files, input strings and production sequences.

/// A position in a text: 1-based line and column (in characters), 0-based byte offset.
public struct TextLocation: Hashable, Sendable, CustomStringConvertible {
  public var line: Int
  public var column: Int
  public var offset: Int

  public init(line: Int, column: Int, offset: Int = 0) {
    self.line = line
    self.column = column
    self.offset = offset
  }

  public var description: String { "\(line):\(column)" }
}

/// Renders `text` and a caret under `column` (1-based, in characters).
func caretLines(_ text: String, column: Int) -> String {
  let shown = text.replacingTabs()
  let pad = String(repeating: " ", count: max(0, column - 1))
  return "  \(shown)\n  \(pad)^"
}

extension String {
  fileprivate func replacingTabs() -> String {
    String(self.map { $0 == "\t" ? " " : $0 })
  }
}

/// An error in a grammar file: where it is, what was found and what was expected.
public struct GrammarError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The file name (or `<grammar>` for text given directly).
  public let file: String
  public let location: TextLocation
  /// One line: what went wrong and what was expected.
  public let message: String
  /// The offending line of the file (empty when the error is about the grammar as a whole).
  public let lineText: String

  public init(file: String, location: TextLocation, message: String, lineText: String) {
    self.file = file
    self.location = location
    self.message = message
    self.lineText = lineText
  }

  /// `file:line:column: message`, one line.
  public var summary: String {
    location.line > 0
      ? "\(file):\(location.line):\(location.column): \(message)" : "\(file): \(message)"
  }

  public var description: String {
    lineText.isEmpty ? summary : summary + "\n" + caretLines(lineText, column: location.column)
  }
}

/// A diagnostic from grammar analysis that does not stop the grammar from loading.
public struct GrammarWarning: Equatable, Sendable, CustomStringConvertible {
  public let file: String
  public let location: TextLocation
  public let message: String

  public var description: String {
    "\(file):\(location.line):\(location.column): warning: \(message)"
  }
}

/// An error turning an input string into a production sequence.
public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The input holds no tokens.
  case emptyInput
  /// A character no terminal of the grammar starts with.
  case unexpectedCharacter(Character, at: TextLocation, input: String)
  /// A token that cannot continue any derivation of the prefix before it.
  case unexpectedToken(String, at: TextLocation, expected: [String], input: String)
  /// The input ends where the grammar needs more tokens.
  case unexpectedEnd(at: TextLocation, expected: [String], input: String)
  /// The derivation has more steps than the encoding allows.
  case tooLong(length: Int, maxLength: Int)
  /// Padding was asked for, but the grammar has no empty production to pad with.
  case noPadding

  /// Where the error is, when it has a position.
  public var location: TextLocation? {
    switch self {
    case .emptyInput, .tooLong, .noPadding: return nil
    case .unexpectedCharacter(_, let at, _), .unexpectedToken(_, let at, _, _),
      .unexpectedEnd(let at, _, _):
      return at
    }
  }

  /// The error as one line, without the position.
  public var message: String {
    switch self {
    case .emptyInput:
      return "empty input"
    case .unexpectedCharacter(let c, _, _):
      return "unexpected character \(quoted(String(c))): no terminal of the grammar starts with it"
    case .unexpectedToken(let t, _, let expected, _):
      return "unexpected \(quoted(t)); expected \(expectedList(expected))"
    case .unexpectedEnd(_, let expected, _):
      return "unexpected end of input; expected \(expectedList(expected))"
    case .tooLong(let length, let maxLength):
      return "derivation has \(length) steps, more than the maximum length \(maxLength)"
    case .noPadding:
      return "the grammar has no empty production to pad with (add a rule such as Nothing -> None)"
    }
  }

  /// `column c: message` (or just the message), one line.
  public var summary: String {
    if let at = location { return "column \(at.column): \(message)" }
    return message
  }

  public var description: String {
    switch self {
    case .unexpectedCharacter(_, let at, let input), .unexpectedToken(_, let at, _, let input),
      .unexpectedEnd(let at, _, let input):
      return summary + "\n" + caretLines(input, column: at.column)
    default:
      return summary
    }
  }
}

/// An error turning a production sequence back into a string.
public enum DerivationError: Error, Equatable, Sendable, CustomStringConvertible {
  /// An index that is not a production of the grammar.
  case unknownProduction(Int, step: Int)
  /// A production whose left-hand side is not the symbol being expanded.
  case notAllowed(production: Int, step: Int, expectedLHS: String)
  /// A production that the grammar analysis masked out (it can never complete).
  case maskedProduction(Int, step: Int)
  /// The stack would hold more symbols than its capacity.
  case tooDeep(capacity: Int, step: Int)
  /// The sequence ends with symbols still to expand.
  case incomplete(steps: Int, pending: [String])

  public var description: String {
    switch self {
    case .unknownProduction(let p, let step):
      return "step \(step): \(p) is not a production index"
    case .notAllowed(let p, let step, let lhs):
      return "step \(step): production \(p) does not expand \(lhs)"
    case .maskedProduction(let p, let step):
      return "step \(step): production \(p) is masked out (it can never derive a string)"
    case .tooDeep(let capacity, let step):
      return "step \(step): the derivation stack would exceed its capacity of \(capacity) symbols"
    case .incomplete(let steps, let pending):
      return "incomplete derivation after \(steps) steps; still to expand: "
        + pending.joined(separator: " ")
    }
  }
}

func quoted(_ s: String) -> String {
  s.contains("'") ? "\"\(s)\"" : "'\(s)'"
}

func expectedList(_ expected: [String]) -> String {
  if expected.isEmpty { return "nothing (no derivation continues here)" }
  let items = expected.map { $0 == "" ? "end of input" : quoted($0) }
  return items.count == 1 ? items[0] : "one of " + items.joined(separator: " ")
}
