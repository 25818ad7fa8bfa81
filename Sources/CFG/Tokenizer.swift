// Tokens from the grammar's terminals: longest match first, whitespace skipped when no
// terminal contains whitespace.

/// One token: a terminal of the grammar and where it starts in the input.
public struct Token: Hashable, Sendable {
  /// Index into `Grammar.terminals`.
  public let terminal: Int
  /// Byte offset of the token in the input's UTF-8.
  public let offset: Int
}

/// A longest-match tokenizer over a grammar's terminals (`Cl` before `C`, `@@` before `@`).
///
/// Tables are flat raw buffers, written once in `init` and read-only afterwards, so the loop
/// does no retain/release or bounds checks.
final class TerminalTokenizer: @unchecked Sendable {
  /// Candidates for first byte `b`: `candidates[candidateStart[b] ..< candidateStart[b + 1]]`,
  /// longest first (equal lengths in file order).
  let candidateStart: UnsafeMutablePointer<Int32>  // [257]
  let candidates: UnsafeMutablePointer<Int32>
  /// Bytes of terminal t: `bytes[byteStart[t] ..< byteStart[t + 1]]`.
  let byteStart: UnsafeMutablePointer<Int32>
  let bytes: UnsafeMutablePointer<UInt8>
  let skipsWhitespace: Bool

  init(terminals: [String], skipsWhitespace: Bool) {
    let terminalBytes = terminals.map { Array($0.utf8) }
    var table = [[Int32]](repeating: [], count: 256)
    for (t, bytes) in terminalBytes.enumerated() { table[Int(bytes[0])].append(Int32(t)) }
    var start: [Int32] = [0]
    var flat: [Int32] = []
    for b in 0..<256 {
      flat += table[b].enumerated().sorted {
        let l0 = terminalBytes[Int($0.element)].count
        let l1 = terminalBytes[Int($1.element)].count
        return l0 != l1 ? l0 > l1 : $0.offset < $1.offset
      }.map(\.element)
      start.append(Int32(flat.count))
    }
    candidateStart = ParserTables.copy(start)
    candidates = ParserTables.copy(flat)
    var byteStart: [Int32] = [0]
    for t in terminalBytes { byteStart.append(byteStart[byteStart.count - 1] + Int32(t.count)) }
    self.byteStart = ParserTables.copy(byteStart)
    bytes = ParserTables.copy(terminalBytes.flatMap { $0 })
    self.skipsWhitespace = skipsWhitespace
  }

  deinit {
    candidateStart.deallocate()
    candidates.deallocate()
    byteStart.deallocate()
    bytes.deallocate()
  }

  @inline(__always) static func isSpace(_ b: UInt8) -> Bool {
    b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C
  }

  /// Appends terminal ids and byte offsets; returns the byte offset of an unknown character,
  /// or -1 when the whole input tokenized.
  func tokenize(
    _ input: UnsafeBufferPointer<UInt8>, terminals: inout [Int32], offsets: inout [Int32]
  ) -> Int {
    var i = 0
    let n = input.count
    outer: while i < n {
      let b = input[i]
      if skipsWhitespace && TerminalTokenizer.isSpace(b) {
        i += 1
        continue
      }
      var c = Int(candidateStart[Int(b)])
      let cEnd = Int(candidateStart[Int(b) + 1])
      while c < cEnd {
        let t = Int(candidates[c])
        let s = Int(byteStart[t])
        let length = Int(byteStart[t + 1]) - s
        var ok = i + length <= n
        var k = 1
        while ok && k < length {
          if input[i + k] != bytes[s + k] { ok = false }
          k += 1
        }
        if ok {
          terminals.append(Int32(t))
          offsets.append(Int32(i))
          i += length
          continue outer
        }
        c += 1
      }
      return i
    }
    return -1
  }
}

/// The 1-based column (in characters) of byte `offset` in `input`.
func column(ofByte offset: Int, in input: String) -> Int {
  var utf8 = Array(input.utf8)
  if offset < utf8.count { utf8.removeSubrange(offset...) }
  return String(decoding: utf8, as: UTF8.self).count + 1
}

/// The character starting at byte `offset`.
func character(atByte offset: Int, in input: String) -> Character {
  let utf8 = Array(input.utf8)
  let rest = String(decoding: utf8[min(offset, utf8.count)...], as: UTF8.self)
  return rest.first ?? " "
}

extension Grammar {
  /// Splits `input` into terminals (longest match first).
  /// - Throws: `ParseError.unexpectedCharacter` with the column of the first character no
  ///   terminal starts with.
  public func tokenize(_ input: String) throws(ParseError) -> [Token] {
    var terms: [Int32] = []
    var offsets: [Int32] = []
    var copy = input
    let bad = copy.withUTF8 { tables.tokenizer.tokenize($0, terminals: &terms, offsets: &offsets) }
    if bad >= 0 {
      throw .unexpectedCharacter(
        character(atByte: bad, in: input),
        at: TextLocation(line: 1, column: column(ofByte: bad, in: input), offset: bad),
        input: input)
    }
    return zip(terms, offsets).map { Token(terminal: Int($0), offset: Int($1)) }
  }
}
