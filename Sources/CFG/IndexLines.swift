// Production-index sequences written as text (the input of `gvae derive`).

/// What is wrong with one line of production indices.
public struct IndexLineError: Error, Equatable, Sendable, CustomStringConvertible {
  public let message: String
  public init(message: String) { self.message = message }
  public var description: String { message }
}

/// Integers separated by spaces, tabs or commas; a field that is not an integer, or a line
/// without any, is an error (the range is checked by `derive`).
public func parseProductionIndices(_ line: String) throws(IndexLineError) -> [Int] {
  var out: [Int] = []
  for field in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }) {
    guard let p = Int(field) else {
      throw IndexLineError(
        message: "\(String(field.prefix(40)).debugDescription) is not a production index")
    }
    out.append(p)
  }
  guard !out.isEmpty else { throw IndexLineError(message: "empty sequence") }
  return out
}
