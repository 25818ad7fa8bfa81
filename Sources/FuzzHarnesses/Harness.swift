// Fuzz harnesses for the tool's input readers, shared by `gvae-fuzz` (libFuzzer and replay)
// and the regression test that replays Fuzz/regressions in the normal test run.
import Foundation

/// A property that did not hold for an input: a bug, unlike an input the reader rejects.
public struct HarnessFailure: Error, CustomStringConvertible {
  public let harness: String
  public let message: String

  public init(harness: String, message: String) {
    self.harness = harness
    self.message = message
  }

  public var description: String { "\(harness): \(message)" }
}

/// One harness: feeds bytes to a reader and checks what it returns.
///
/// A rejected input (a thrown parse or file error) is fine; a wrong result is a
/// `HarnessFailure`; a trap, a stack overflow or a memory error is a crash.
public struct FuzzHarness: Sendable {
  public let name: String
  /// `-max_len` for fuzzing (replaying a file has no limit).
  public let maxLength: Int
  public let summary: String
  let body: @Sendable (Data) throws(HarnessFailure) -> Void

  public func run(_ data: Data) throws(HarnessFailure) { try body(data) }

  public static let all: [FuzzHarness] = [
    FuzzHarness(
      name: "zinc-parse", maxLength: 512,
      summary: "tokenize and parse SMILES with the zinc grammar; check the round trip",
      body: { data throws(HarnessFailure) in try ParseHarness.zinc.run(data) }),
    FuzzHarness(
      name: "equation-parse", maxLength: 256,
      summary: "tokenize and parse expressions with the equation grammar; check the round trip",
      body: { data throws(HarnessFailure) in try ParseHarness.equation.run(data) }),
    FuzzHarness(
      name: "zinc-rr-parse", maxLength: 512,
      summary: "tokenize and parse SMILES with the zinc-rr grammar; check the round trip",
      body: { data throws(HarnessFailure) in try ParseHarness.zincRR.run(data) }),
    FuzzHarness(
      name: "vector-line", maxLength: 1024,
      summary: "read a latent vector line (gvae decode); check the numbers it returns",
      body: { data throws(HarnessFailure) in try LineHarness.vector(data) }),
    FuzzHarness(
      name: "index-line", maxLength: 1024,
      summary: "read a production-index line (gvae derive) and derive it with zinc",
      body: { data throws(HarnessFailure) in try LineHarness.indices(data) }),
    FuzzHarness(
      name: "smiles-check", maxLength: 1024,
      summary: "check SMILES chemistry (gvae check); a valid result re-checks the same",
      body: { data throws(HarnessFailure) in try LineHarness.smiles(data) }),
    FuzzHarness(
      name: "grammar-file", maxLength: 2048,
      summary: "load a grammar file; build masks and stacks; parse derived strings",
      body: { data throws(HarnessFailure) in try GrammarFileHarness.run(data) }),
    FuzzHarness(
      name: "safetensors", maxLength: 4096,
      summary: "decode a safetensors file; touch every tensor; check re-encoding",
      body: { data throws(HarnessFailure) in try SafeTensorsHarness.run(data) }),
    FuzzHarness(
      name: "model-file", maxLength: 65536,
      summary: "load a model file with VAEModel.load(path:); check save and reload",
      body: { data throws(HarnessFailure) in try ModelFileHarness.run(data) }),
    FuzzHarness(
      name: "checkpoint", maxLength: 131072,
      summary: "resume a trainer from a checkpoint file (gvae train --resume)",
      body: { data throws(HarnessFailure) in try CheckpointHarness.run(data) }),
  ]

  public static func named(_ name: String) -> FuzzHarness? { all.first { $0.name == name } }

  /// Runs every file under `url` (or the file itself); returns the files run.
  /// - Throws: the first `HarnessFailure`, with the file name in its message.
  @discardableResult
  public func replay(_ url: URL) throws -> [URL] {
    let files = FuzzHarness.files(under: url)
    for f in files {
      let data = try Data(contentsOf: f)
      do { try run(data) } catch {
        throw HarnessFailure(harness: name, message: "\(f.path): \(error.message)")
      }
    }
    return files
  }

  /// Regular files under `url`, sorted, hidden files (`.gitkeep`, README) skipped.
  public static func files(under url: URL) -> [URL] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else { return [] }
    if !isDir.boolValue { return [url] }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
    return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted()
      .map { url.appendingPathComponent($0) }
      .flatMap { files(under: $0) }
  }
}

/// With GVAE_FUZZ_VERBOSE=1, why each input was rejected (to check that seeds get far).
let verbose = ProcessInfo.processInfo.environment["GVAE_FUZZ_VERBOSE"] == "1"

/// An input the reader rejected: fine, but the message is built as the tool would print it.
func rejected(_ harness: String, _ error: any Error) {
  let message = "\(error)"
  if verbose { FileHandle.standardError.write(Data("\(harness): rejected: \(message)\n".utf8)) }
}

func fail(_ harness: String, _ message: String) -> HarnessFailure {
  HarnessFailure(harness: harness, message: message)
}

/// A scratch directory unique to this process (fuzzing runs several processes at once).
enum ScratchDirectory {
  static let path: String = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let dir = "\(base)/gvae-fuzz-\(ProcessInfo.processInfo.processIdentifier)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
  }()

  /// Writes `data` to `name` in the scratch directory and returns the path.
  static func write(_ data: Data, name: String) -> String {
    let path = "\(ScratchDirectory.path)/\(name)"
    _ = FileManager.default.createFile(atPath: path, contents: data)
    return path
  }

  /// Removes the directory (the fuzzer calls this at exit).
  public static func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Removes the per-process scratch directory.
public func removeFuzzScratch() { ScratchDirectory.remove() }
