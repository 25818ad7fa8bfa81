// Encodings for models: padded index sequences, masks, one-hot rows.

extension Grammar {
  /// Number of mask rows (non-terminals with productions) and columns (productions).
  public var maskShape: (rows: Int, columns: Int) { (nonterminals.count, productions.count) }

  /// The mask matrix, row-major `[rows, productions]`: `mask[lhs][p] = 1` when production `p`
  /// expands `lhs` and can complete (masked-out productions such as ZINC's 29 and 31 are 0).
  public func maskMatrix() -> [Float] {
    var m = [Float](repeating: 0, count: nonterminals.count * productions.count)
    for p in productions.indices where usable[p] {
      m[Int(lhsID[p]) * productions.count + p] = 1
    }
    return m
  }

  /// The leftmost derivation padded with the padding production to `maxLength` steps.
  /// - Throws: `ParseError.tooLong` (with both lengths) when the derivation is longer.
  public func padded(_ derivation: [Int], to maxLength: Int? = nil) throws(ParseError) -> [Int32] {
    let length = maxLength ?? self.maxLength
    guard derivation.count <= length else {
      throw .tooLong(length: derivation.count, maxLength: length)
    }
    guard paddingProduction >= 0 || derivation.count == length else { throw .noPadding }
    var out = derivation.map { Int32($0) }
    out.append(
      contentsOf: repeatElement(Int32(paddingProduction), count: length - derivation.count))
    return out
  }

  /// Parses `input` and pads its derivation to `maxLength` (default: the grammar's).
  public func encode(_ input: String, maxLength: Int? = nil) throws(ParseError) -> [Int32] {
    try padded(parse(input), to: maxLength)
  }

  /// Writes one-hot rows for `sequence` into `buffer`, laid out `[sequence.count, productions]`
  /// (the buffer is cleared first).
  public func oneHot(
    _ sequence: some Collection<Int32>, into buffer: UnsafeMutableBufferPointer<Float>
  ) {
    let width = productions.count
    precondition(
      buffer.count >= sequence.count * width,
      "one-hot buffer holds \(buffer.count) floats; needs \(sequence.count) × \(width)")
    buffer.update(repeating: 0)
    for (t, p) in sequence.enumerated() {
      precondition(p >= 0 && Int(p) < width, "production \(p) out of range 0..<\(width)")
      buffer[t * width + Int(p)] = 1
    }
  }
}

extension Parser {
  /// Parses `input` and writes its padded derivation into `row` (length = maximum length).
  /// - Throws: `ParseError`, including `.tooLong` when the derivation does not fit.
  public func encode(_ input: String, into row: UnsafeMutableBufferPointer<Int32>)
    throws(ParseError)
  {
    s.output.removeAll(keepingCapacity: true)
    try parse(input, into: &s.output)
    guard s.output.count <= row.count else {
      throw .tooLong(length: s.output.count, maxLength: row.count)
    }
    let padding = grammar.paddingProduction
    guard padding >= 0 || s.output.count == row.count else { throw .noPadding }
    for (k, p) in s.output.enumerated() { row[k] = p }
    for k in s.output.count..<row.count { row[k] = Int32(padding) }
  }
}
