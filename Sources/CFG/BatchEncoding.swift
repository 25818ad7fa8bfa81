// Parsing many strings on all cores.
import Dispatch

/// Padded derivations of many strings: `indices` is row-major `[count, maxLength]`.
public struct EncodedBatch: Sendable {
  public let count: Int
  public let maxLength: Int
  /// Row-major `[count, maxLength]`; a failed row is all padding (index 0 when the grammar
  /// has no padding production, in which case every row shorter than `maxLength` fails).
  public var indices: [Int32]
  /// The rows that failed, in order, with their errors.
  public var failures: [(row: Int, error: ParseError)]
}

extension Grammar {
  /// Parses every input and pads each derivation to `maxLength` (default: the grammar's),
  /// splitting the work into chunks run concurrently (one `Parser` per chunk).
  public func encodeAll(_ inputs: [String], maxLength: Int? = nil, chunkSize: Int = 4096)
    -> EncodedBatch
  {
    let L = maxLength ?? self.maxLength
    let n = inputs.count
    let fill = Int32(max(0, paddingProduction))
    var indices = [Int32](repeating: fill, count: n * L)
    let chunks = (n + chunkSize - 1) / chunkSize
    let failures = FailureList(chunks: chunks)
    indices.withUnsafeMutableBufferPointer { out in
      let base = UnsafeMutableSendablePointer(out.baseAddress)
      DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let parser = Parser(grammar: self)
        var local: [(row: Int, error: ParseError)] = []
        for r in (c * chunkSize)..<min(n, (c + 1) * chunkSize) {
          guard let start = base.pointer?.advanced(by: r * L) else { continue }
          do throws(ParseError) {
            try parser.encode(inputs[r], into: UnsafeMutableBufferPointer(start: start, count: L))
          } catch {
            // Leave the row as padding.
            UnsafeMutableBufferPointer(start: start, count: L).update(repeating: fill)
            local.append((r, error))
          }
        }
        failures.set(c, local)
      }
    }
    return EncodedBatch(count: n, maxLength: L, indices: indices, failures: failures.all)
  }

  /// Leftmost derivations of every input (no padding), computed concurrently in chunks.
  public func parseAll(_ inputs: [String], chunkSize: Int = 4096) -> [Result<[Int32], ParseError>] {
    let n = inputs.count
    let chunks = (n + chunkSize - 1) / chunkSize
    let results = ResultList(chunks: chunks)
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
      let parser = Parser(grammar: self)
      var local: [Result<[Int32], ParseError>] = []
      for r in (c * chunkSize)..<min(n, (c + 1) * chunkSize) {
        var out: [Int32] = []
        do throws(ParseError) {
          try parser.parse(inputs[r], into: &out)
          local.append(.success(out))
        } catch {
          local.append(.failure(error))
        }
      }
      results.set(c, local)
    }
    return results.all
  }
}

/// A pointer handed to concurrent workers that write disjoint rows.
struct UnsafeMutableSendablePointer: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Int32>?
  init(_ p: UnsafeMutablePointer<Int32>?) { pointer = p }
}

/// Per-chunk results collected from concurrent workers (each slot written by one worker).
final class FailureList: @unchecked Sendable {
  private var slots: [[(row: Int, error: ParseError)]]
  private let lock = NSLockLike()
  init(chunks: Int) { slots = Array(repeating: [], count: chunks) }
  func set(_ c: Int, _ v: [(row: Int, error: ParseError)]) { lock.withLock { slots[c] = v } }
  var all: [(row: Int, error: ParseError)] { lock.withLock { slots.flatMap { $0 } } }
}

final class ResultList: @unchecked Sendable {
  private var slots: [[Result<[Int32], ParseError>]]
  private let lock = NSLockLike()
  init(chunks: Int) { slots = Array(repeating: [], count: chunks) }
  func set(_ c: Int, _ v: [Result<[Int32], ParseError>]) { lock.withLock { slots[c] = v } }
  var all: [Result<[Int32], ParseError>] { lock.withLock { slots.flatMap { $0 } } }
}

/// A serial-queue lock (Dispatch only, no Foundation).
final class NSLockLike: @unchecked Sendable {
  private let queue = DispatchQueue(label: "gvae.cfg.lock")
  func withLock<T>(_ body: () -> T) -> T { queue.sync(execute: body) }
}
