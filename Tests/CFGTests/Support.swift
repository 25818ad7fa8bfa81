import Foundation
import Testing

@testable import CFG

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func goldenURL(_ name: String) -> URL {
  packageRoot.appendingPathComponent("Tests/CFGTests/Golden").appendingPathComponent(name)
}

/// `input<TAB>expected` lines of a golden corpus (lines starting with `#` are titles).
func goldenCases(_ name: String) throws -> [(input: String, expected: String)] {
  let text = try String(contentsOf: goldenURL(name), encoding: .utf8)
  return text.split(separator: "\n").compactMap { line in
    guard !line.hasPrefix("#"), let tab = line.firstIndex(of: "\t") else { return nil }
    return (String(line[..<tab]), String(line[line.index(after: tab)...]))
  }
}

/// Compares `actual` with a golden file; with `RECORD_GOLDEN=1` rewrites it and fails on
/// purpose so a human reviews the diff.
func expectGolden(
  _ actual: String, file name: String, sourceLocation: SourceLocation = #_sourceLocation
) {
  let url = goldenURL(name)
  if ProcessInfo.processInfo.environment["RECORD_GOLDEN"] == "1" {
    try? actual.write(to: url, atomically: true, encoding: .utf8)
    Issue.record(
      "recorded \(name); review the diff and run again without RECORD_GOLDEN",
      sourceLocation: sourceLocation)
    return
  }
  let expected = (try? String(contentsOf: url, encoding: .utf8)) ?? "<missing \(name)>"
  #expect(actual == expected, "golden file \(name) differs", sourceLocation: sourceLocation)
}

func sampleLines(_ name: String) throws -> [String] {
  let url = packageRoot.appendingPathComponent("Datasets").appendingPathComponent(name)
  return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
}
