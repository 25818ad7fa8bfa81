import ArgumentParser
import CFG
import Engine
import Foundation

/// `--grammar zinc|equation|PATH`, shared by the grammar commands.
struct GrammarOption: ParsableArguments {
  @Option(
    name: .long,
    help: "A shipped grammar (zinc, equation) or a grammar file path (NLTK CFG format).")
  var grammar: String = "zinc"

  /// Loads the grammar; for a grammar file, prints the analysis warnings to stderr.
  func load() throws -> Grammar {
    let g: Grammar
    do {
      g = try Grammar.named(grammar)
    } catch {
      throw fail(error.summary)
    }
    if !ShippedGrammar.all.contains(where: { $0.name == grammar }) {
      for w in g.warnings { printError(w.description) }
    }
    return g
  }
}

/// Writes one line to stderr; in an MPI job only rank 0 speaks, except for errors.
func printError(_ line: String) {
  let c = Cluster.world
  if c.size > 1 && !c.isRoot {
    guard line.hasPrefix("gvae: error") else { return }
    FileHandle.standardError.write(Data(("rank \(c.rank): " + line + "\n").utf8))
    return
  }
  FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Prints `gvae: error: message` and returns the exit code to throw.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
  printError("gvae: error: " + message)
  return ExitCode(code)
}

/// Buffered stdout writer: one `write` per 64 KiB.
final class OutputBuffer {
  private var bytes: [UInt8] = []
  init() { bytes.reserveCapacity(1 << 16) }
  func write(_ s: String) {
    bytes.append(contentsOf: s.utf8)
    if bytes.count >= 1 << 16 { flush() }
  }
  /// Writes non-negative integers separated by single spaces, then a newline.
  func writeIndices(_ values: [Int]) {
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0)
    for (k, value) in values.enumerated() {
      if k > 0 { bytes.append(0x20) }
      var v = value
      guard v > 0 else {
        if v == 0 { bytes.append(0x30) } else { bytes.append(contentsOf: String(v).utf8) }
        continue
      }
      withUnsafeMutableBytes(of: &digits) { d in
        var n = 0
        while v > 0 {
          d[n] = UInt8(0x30 + v % 10)
          v /= 10
          n += 1
        }
        while n > 0 {
          n -= 1
          bytes.append(d[n])
        }
      }
    }
    bytes.append(0x0A)
    if bytes.count >= 1 << 16 { flush() }
  }

  func flush() {
    guard !bytes.isEmpty else { return }
    FileHandle.standardOutput.write(Data(bytes))
    bytes.removeAll(keepingCapacity: true)
  }
  deinit { flush() }
}

