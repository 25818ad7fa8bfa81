// Arithmetic expressions in x and the paper's expression-fitting objective.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why an expression string does not parse.
public struct ExpressionError: Error, Equatable, CustomStringConvertible {
  public var message: String
  /// Character offset in the input.
  public var offset: Int

  public var description: String { "\(message) at character \(offset + 1)" }
}

/// A parsed expression over one variable `x`: numbers, `x`, `+ − * /` (usual precedence,
/// left associative, as Python evaluates the decoded strings in the paper's code), unary
/// minus, parentheses and `sin( … )`, `exp( … )`, `cos`, `log`. Spaces are ignored, so both
/// the grammar's spaced tokens and plain text parse. Evaluation is IEEE double arithmetic
/// like numpy: division by zero gives ±inf (0/0 NaN), exp overflows to inf.
public indirect enum Expression: Sendable, Equatable {
  case variable
  case constant(Double)
  case negate(Expression)
  case binary(Character, Expression, Expression)
  case function(String, Expression)

  public static let functions = ["sin", "cos", "exp", "log"]

  public init(parsing text: String) throws(ExpressionError) {
    var p = ExpressionParser(Array(text))
    let e = try p.sum()
    p.skipSpaces()
    guard p.i == p.chars.count else {
      throw ExpressionError(message: "unexpected '\(p.chars[p.i])'", offset: p.i)
    }
    self = e
  }

  /// Values at every point of `x`.
  public func evaluate(_ x: [Double]) -> [Double] {
    switch self {
    case .variable: return x
    case .constant(let c): return [Double](repeating: c, count: x.count)
    case .negate(let e): return e.evaluate(x).map { -$0 }
    case .binary(let op, let l, let r):
      let a = l.evaluate(x)
      let b = r.evaluate(x)
      switch op {
      case "+": return zip(a, b).map { $0 + $1 }
      case "-": return zip(a, b).map { $0 - $1 }
      case "*": return zip(a, b).map { $0 * $1 }
      default: return zip(a, b).map { $0 / $1 }
      }
    case .function(let name, let e):
      let a = e.evaluate(x)
      switch name {
      case "sin": return a.map { sin($0) }
      case "cos": return a.map { cos($0) }
      case "exp": return a.map { exp($0) }
      default: return a.map { log($0) }
      }
    }
  }
}

struct ExpressionParser {
  let chars: [Character]
  var i = 0
  init(_ chars: [Character]) { self.chars = chars }

  mutating func skipSpaces() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

  mutating func peek() -> Character? {
    skipSpaces()
    return i < chars.count ? chars[i] : nil
  }

  mutating func sum() throws(ExpressionError) -> Expression {
    var e = try product()
    while let c = peek(), c == "+" || c == "-" {
      i += 1
      e = .binary(c, e, try product())
    }
    return e
  }

  mutating func product() throws(ExpressionError) -> Expression {
    var e = try unary()
    while let c = peek(), c == "*" || c == "/" {
      i += 1
      e = .binary(c, e, try unary())
    }
    return e
  }

  mutating func unary() throws(ExpressionError) -> Expression {
    if peek() == "-" {
      i += 1
      return .negate(try unary())
    }
    if peek() == "+" {
      i += 1
      return try unary()
    }
    return try atom()
  }

  mutating func atom() throws(ExpressionError) -> Expression {
    guard let c = peek() else { throw ExpressionError(message: "unexpected end", offset: i) }
    if c == "(" {
      i += 1
      let e = try sum()
      guard peek() == ")" else { throw ExpressionError(message: "expected ')'", offset: i) }
      i += 1
      return e
    }
    if c.isNumber || c == "." {
      let start = i
      while i < chars.count, chars[i].isNumber || chars[i] == "." { i += 1 }
      guard let v = Double(String(chars[start..<i])) else {
        throw ExpressionError(message: "bad number", offset: start)
      }
      return .constant(v)
    }
    if c.isLetter {
      let start = i
      while i < chars.count, chars[i].isLetter { i += 1 }
      let name = String(chars[start..<i])
      if name == "x" { return .variable }
      guard Expression.functions.contains(name) else {
        throw ExpressionError(message: "unknown name '\(name)'", offset: start)
      }
      guard peek() == "(" else { throw ExpressionError(message: "expected '('", offset: i) }
      i += 1
      let e = try sum()
      guard peek() == ")" else { throw ExpressionError(message: "expected ')'", offset: i) }
      i += 1
      return .function(name, e)
    }
    throw ExpressionError(message: "unexpected '\(c)'", offset: i)
  }
}

/// The paper's expression objective (minimise):
///
/// ```
/// score(f) = log(1 + mean_i min((f(xᵢ) − yᵢ)², 1000)),  y = 1/3 + x + sin(x·x)
/// ```
///
/// on x = linspace(−10, 10, 1000). An infinite error is capped at 1000 like numpy's minimum;
/// a NaN at any point (numpy's minimum propagates it) or an unparsable string scores
/// log(1001), the worst possible.
public struct ExpressionObjective: Sendable {
  public let points: [Double]
  public let targets: [Double]
  public static let worst = log(1001.0)

  public init(target: Expression = ExpressionObjective.paperTarget, count: Int = 1000) {
    points = (0..<count).map { i in
      count == 1 ? -10 : (i == count - 1 ? 10 : -10 + 20 * Double(i) / Double(count - 1))
    }
    targets = target.evaluate(points)
  }

  /// `1/3 + x + sin(x*x)`.
  public static let paperTarget: Expression = .binary(
    "+", .binary("+", .binary("/", .constant(1), .constant(3)), .variable),
    .function("sin", .binary("*", .variable, .variable)))

  public func score(_ e: Expression) -> Double {
    let f = e.evaluate(points)
    var total = 0.0
    for (a, b) in zip(f, targets) {
      let d = (a - b) * (a - b)
      if d.isNaN { return Self.worst }
      total += min(d, 1000)
    }
    let s = log(1 + total / Double(points.count))
    return s.isFinite ? s : Self.worst
  }

  /// The score and whether the string parsed.
  public func score(_ text: String) -> (score: Double, valid: Bool) {
    guard let e = try? Expression(parsing: text) else { return (Self.worst, false) }
    return (score(e), true)
  }
}
