// Owned by the grammar-engine work: parse throughput on the full data sets.
//   gvae-bench parse [--zinc PATH] [--equations PATH] [--runs N]
import CFG
import Foundation

/// Times parsing every line of both data sets to padded index sequences (all cores).
func runParseBenchmarks(_ options: BenchOptions) {
  let zincPath = options["--zinc"] ?? "../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz"
  let equationsPath = options["--equations"] ?? "../shared/data/equations/equation2_15_dataset.txt.gz"
  let runs = options.int("--runs") ?? 3
  for (name, path) in [("zinc", zincPath), ("equation", equationsPath)] {
    guard let lines = readLines(path) else {
      FileHandle.standardError.write(Data("parse benchmark: cannot read \(path)\n".utf8))
      continue
    }
    guard let grammar = try? Grammar.named(name) else { continue }
    var failures = 0
    let seconds = medianSeconds(runs: runs) {
      let batch = grammar.encodeAll(lines)
      failures = batch.failures.count
    }
    report(
      "parse_\(name)", medianSeconds: seconds,
      [
        "strings": lines.count, "failures": failures, "runs": runs,
        "strings_per_second": Double(lines.count) / seconds,
        "microseconds_per_string": 1e6 * seconds / Double(max(1, lines.count)),
        "max_length": grammar.maxLength,
        "threads": ProcessInfo.processInfo.activeProcessorCount,
      ])
  }
}

/// Lines of a text file, gzip-decompressed (with `gzip -dc`) when the name ends in `.gz`.
private func readLines(_ path: String) -> [String]? {
  let data: Data
  if path.hasSuffix(".gz") {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", "exec gzip -dc \"$0\"", path]
    let pipe = Pipe()
    process.standardOutput = pipe
    do { try process.run() } catch { return nil }
    data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
  } else {
    guard let d = FileManager.default.contents(atPath: path) else { return nil }
    data = d
  }
  return String(decoding: data, as: UTF8.self).split(separator: "\n").map {
    $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
  }
}
