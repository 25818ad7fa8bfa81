// Replays every saved fuzz regression (Fuzz/regressions/<harness>/) through its harness, and
// the seed corpora, so that a fixed crash stays fixed in the normal test run.
import Foundation
import FuzzHarnesses
import Testing

let fuzzRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("Fuzz")

// Serialized: harnesses reuse per-process scratch files and parsers.
@Suite(.serialized) struct FuzzRegressionTests {
  @Test(arguments: FuzzHarness.all.map(\.name))
  func regressionsReplay(_ name: String) throws {
    let harness = try #require(FuzzHarness.named(name))
    let dir = fuzzRoot.appendingPathComponent("regressions/\(name)")
    for file in FuzzHarness.files(under: dir) {
      #expect(throws: Never.self, "\(file.lastPathComponent)") {
        try harness.run(Data(contentsOf: file))
      }
    }
  }

  @Test(arguments: FuzzHarness.all.map(\.name))
  func seedCorpusReplays(_ name: String) throws {
    let harness = try #require(FuzzHarness.named(name))
    let files = FuzzHarness.files(under: fuzzRoot.appendingPathComponent("corpus/\(name)"))
    #expect(!files.isEmpty, "no seed corpus for \(name)")
    for file in files {
      #expect(throws: Never.self, "\(file.lastPathComponent)") {
        try harness.run(Data(contentsOf: file))
      }
    }
  }

  /// Every saved input belongs to a harness, so none is silently skipped.
  @Test func regressionDirectoriesNameHarnesses() throws {
    let dir = fuzzRoot.appendingPathComponent("regressions")
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
      .filter { !$0.hasPrefix(".") && $0 != "README.md" }
    for n in names { #expect(FuzzHarness.named(n) != nil, "Fuzz/regressions/\(n) is no harness") }
  }

  /// A failed property is reported with the file that failed.
  @Test func replayReportsTheFile() throws {
    let harness = try #require(FuzzHarness.named("zinc-parse"))
    let missing = fuzzRoot.appendingPathComponent("regressions/zinc-parse/no-such-file")
    #expect(try harness.replay(missing).isEmpty)
    let failure = HarnessFailure(harness: "zinc-parse", message: "x.smi: round trip")
    #expect(failure.description == "zinc-parse: x.smi: round trip")
  }
}
