// Item-by-item input and in-place error reporting for the commands that read many items.
import Foundation
import NN

/// Items from the arguments or, without arguments, stdin lines read as they arrive (so a
/// result is printed long before the input ends).
struct InputItems {
  private let arguments: [String]
  private var index = 0
  /// Items handed out so far (the 1-based number of the last one).
  private(set) var count = 0

  init(_ arguments: [String]) { self.arguments = arguments }

  mutating func next() -> String? {
    if !arguments.isEmpty {
      guard index < arguments.count else { return nil }
      index += 1
      count += 1
      return arguments[index - 1]
    }
    // readLine strips "\n" and "\r\n"; invalid UTF-8 becomes U+FFFD and fails to parse.
    guard let line = readLine(strippingNewline: true) else { return nil }
    count += 1
    return line
  }

  /// Calls `body` with each block of up to `size` items and the number of its first item,
  /// flushing `out` after each, so results appear block by block.
  mutating func forEachBlock(
    _ size: Int, flushing out: OutputBuffer, _ body: (_ block: [String], _ first: Int) throws -> Void
  ) rethrows {
    while true {
      let first = count + 1
      let block = nextBlock(size)
      if block.isEmpty { return }
      try body(block, first)
      out.flush()
    }
  }

  /// Up to `size` items (fewer only at the end of the input); empty when the input is done.
  mutating func nextBlock(_ size: Int) -> [String] {
    var block: [String] = []
    while block.count < size, let item = next() { block.append(item) }
    return block
  }
}

/// Reports bad items: text mode prints the results so far and stops with the error; JSON
/// mode writes `{"input", "error": {"line", "message"}}` in place and goes on, and the
/// command exits 1 at the end.
final class ItemReporter {
  let format: OutputFormat
  let out: OutputBuffer
  private(set) var failures = 0

  init(format: OutputFormat, out: OutputBuffer) {
    self.format = format
    self.out = out
  }

  func report(line: Int, input: String, message: String) throws {
    failures += 1
    switch format {
    case .json:
      out.write(
        "{\"input\":\(jsonString(input)),\"error\":{\"line\":\(line),"
          + "\"message\":\(jsonString(message))}}\n")
    case .text:
      out.flush()
      throw fail("line \(line): \(message)  [input: \(input.prefix(200))]")
    }
  }

  /// Flushes; after JSON output with bad items, a summary on stderr and exit status 1.
  func finish(items: Int) throws {
    out.flush()
    if failures > 0 { throw fail("\(failures) of \(items) inputs failed (see their \"error\")") }
  }
}
