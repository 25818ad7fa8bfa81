// Training data: text files of strings (gzip accepted, or a CSV column), parsed once.
import Foundation

/// Reads one string per line from a text file (`.gz` decompressed with `gzip -dc`), or one
/// column of a CSV file. Returns the strings with their 1-based line numbers; blank lines
/// are dropped.
public enum TextData {
  public static func lines(path: String, column: String? = nil) throws(DataError) -> [(
    line: Int, text: String
  )] {
    let raw = try readText(path: path)
    var out: [(Int, String)] = []
    var lineNumber = 0
    if let column {
      var header: [String]? = nil
      var columnIndex = -1
      for line in raw.split(separator: "\n", omittingEmptySubsequences: false) {
        lineNumber += 1
        let l = line.hasSuffix("\r") ? line.dropLast() : line
        if l.trimmingCharacters(in: .whitespaces).isEmpty { continue }
        let fields = csvFields(String(l))
        if header == nil {
          header = fields
          if let i = fields.firstIndex(where: { $0.trimmingWhitespace() == column }) {
            columnIndex = i
          } else if let i = Int(column), i >= 0, i < fields.count {
            columnIndex = i
          } else {
            throw .badColumn(column, available: fields)
          }
          continue
        }
        guard columnIndex < fields.count else {
          throw .malformed(path: path, line: lineNumber, message: "row has \(fields.count) fields")
        }
        let v = fields[columnIndex].trimmingWhitespace()
        if !v.isEmpty { out.append((lineNumber, v)) }
      }
      return out
    }
    for line in raw.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let v = String(line).trimmingWhitespace()
      if !v.isEmpty { out.append((lineNumber, v)) }
    }
    return out
  }

  /// The file's text; gzip files are decompressed.
  public static func readText(path: String) throws(DataError) -> String {
    guard FileManager.default.fileExists(atPath: path) else { throw .missing(path) }
    let data: Data
    if path.hasSuffix(".gz") {
      data = try gunzip(path: path)
    } else {
      guard let d = FileManager.default.contents(atPath: path) else { throw .unreadable(path) }
      data = d
    }
    guard let s = String(data: data, encoding: .utf8) else { throw .notText(path) }
    return s
  }

  static func gunzip(path: String) throws(DataError) -> Data {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["gzip", "-dc", path]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { throw .unreadable(path + " (gzip not available)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw .unreadable(path + " (not a gzip file)") }
    return data
  }

  /// Splits one CSV line (double-quoted fields with `""` escapes).
  static func csvFields(_ line: String) -> [String] {
    var fields: [String] = []
    var cur = ""
    var inQuotes = false
    var it = Array(line)
    var i = 0
    while i < it.count {
      let c = it[i]
      if inQuotes {
        if c == "\"" {
          if i + 1 < it.count && it[i + 1] == "\"" {
            cur.append("\"")
            i += 1
          } else {
            inQuotes = false
          }
        } else {
          cur.append(c)
        }
      } else if c == "\"" {
        inQuotes = true
      } else if c == "," {
        fields.append(cur)
        cur = ""
      } else {
        cur.append(c)
      }
      i += 1
    }
    fields.append(cur)
    it.removeAll()
    return fields
  }
}

/// Problems reading data files.
public enum DataError: Error, Equatable, Sendable, CustomStringConvertible {
  case missing(String)
  case unreadable(String)
  case notText(String)
  case badColumn(String, available: [String])
  case malformed(path: String, line: Int, message: String)
  case empty(String)

  public var description: String {
    switch self {
    case .missing(let p): return "no such file: \(p)"
    case .unreadable(let p): return "cannot read \(p)"
    case .notText(let p): return "\(p) is not UTF-8 text"
    case .badColumn(let c, let a):
      return "no column '\(c)' in the CSV header (columns: \(a.joined(separator: ", ")))"
    case .malformed(let p, let l, let m): return "\(p):\(l): \(m)"
    case .empty(let m): return m
    }
  }
}

/// Encoded strings: `[count, steps]` indices, true lengths, and where each came from.
public struct EncodedDataset: Sendable {
  public var steps: Int
  public var strings: [String]
  public var sequences: [Int32]  // [count, steps]
  public var lengths: [Int32]  // [count]
  public var lineNumbers: [Int]  // [count]
  /// Lines that could not be encoded: line number, text and why.
  public var skipped: [(line: Int, text: String, reason: String)]

  public var count: Int { strings.count }

  public init(steps: Int) {
    self.steps = steps
    strings = []
    sequences = []
    lengths = []
    lineNumbers = []
    skipped = []
  }

  /// Encodes every line with `codec`, on `threads` threads; unencodable lines go to `skipped`.
  public init(lines: [(line: Int, text: String)], codec: SequenceCodec, threads: Int = 2) {
    self.init(steps: codec.steps)
    let n = lines.count
    let T = codec.steps
    let chunks = max(1, min(threads, n / 1000 + 1))
    final class Box: @unchecked Sendable {
      var seq: [[Int32]]
      var len: [[Int32]]
      var ok: [[Bool]]
      var why: [[String]]
      init(_ k: Int) {
        seq = Array(repeating: [], count: k)
        len = Array(repeating: [], count: k)
        ok = Array(repeating: [], count: k)
        why = Array(repeating: [], count: k)
      }
    }
    let box = Box(chunks)
    let per = (n + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
      let local = codec.copy()
      let lo = c * per
      let hi = min(n, lo + per)
      var seq = [Int32]()
      var len = [Int32]()
      var ok = [Bool]()
      var why = [String]()
      if lo < hi {
        seq.reserveCapacity((hi - lo) * T)
        for i in lo..<hi {
          do {
            let (s, l) = try local.encode(lines[i].text)
            seq.append(contentsOf: s)
            len.append(Int32(l))
            ok.append(true)
            why.append("")
          } catch {
            ok.append(false)
            len.append(0)
            why.append("\(error)")
          }
        }
      }
      box.seq[c] = seq
      box.len[c] = len
      box.ok[c] = ok
      box.why[c] = why
    }
    var i = 0
    for c in 0..<chunks {
      sequences.append(contentsOf: box.seq[c])
      for k in box.ok[c].indices {
        if box.ok[c][k] {
          strings.append(codec.canonical(lines[i].text))
          lengths.append(box.len[c][k])
          lineNumbers.append(lines[i].line)
        } else {
          skipped.append((lines[i].line, lines[i].text, box.why[c][k]))
        }
        i += 1
      }
    }
  }

  /// The rows at `indices`, in that order.
  public func subset(_ indices: [Int]) -> EncodedDataset {
    var d = EncodedDataset(steps: steps)
    d.strings.reserveCapacity(indices.count)
    d.sequences.reserveCapacity(indices.count * steps)
    for i in indices {
      d.strings.append(strings[i])
      d.sequences.append(contentsOf: sequences[(i * steps)..<((i + 1) * steps)])
      d.lengths.append(lengths[i])
      d.lineNumbers.append(lineNumbers[i])
    }
    return d
  }
}
