// End-to-end tests of the built `gvae` binary: stdout, stderr and exit codes.
import Foundation
import Testing

/// The `gvae` executable: `$GVAE_BINARY`, else next to this test bundle in the build products
/// directory, else `.build/debug/gvae` under the package root.
let gvaeBinary: URL? = {
  let fm = FileManager.default
  var candidates: [URL] = []
  if let path = ProcessInfo.processInfo.environment["GVAE_BINARY"] {
    candidates.append(URL(fileURLWithPath: path))
  }
  for base in [Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0])] {
    var dir = base
    for _ in 0..<3 {
      dir = dir.deletingLastPathComponent()
      candidates.append(dir.appendingPathComponent("gvae"))
    }
  }
  let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  candidates.append(root.appendingPathComponent(".build/debug/gvae"))
  return candidates.first { url in
    var isDirectory: ObjCBool = false
    return fm.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
      && fm.isExecutableFile(atPath: url.path)
  }
}()

struct ToolResult {
  var stdout: String
  var stderr: String
  var status: Int32
}

/// Runs gvae (or `executable`) with `stdin`, in `directory` when given.
func gvae(
  _ arguments: [String], stdin: String = "", in directory: URL? = nil, executable: URL? = nil,
  environment: [String: String] = [:]
) throws -> ToolResult {
  let binary = try #require(gvaeBinary, "gvae binary not found; build it or set GVAE_BINARY")
  let process = Process()
  process.executableURL = executable ?? binary
  process.arguments = arguments
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  if let directory { process.currentDirectoryURL = directory }
  // stdin and stderr go through files, stdout through a pipe read to the end: no deadlock.
  let stdinFile = try temporaryFile(stdin, name: "stdin-\(UUID().uuidString)")
  let stderrFile = try temporaryFile("", name: "stderr-\(UUID().uuidString)")
  defer {
    try? FileManager.default.removeItem(at: stdinFile)
    try? FileManager.default.removeItem(at: stderrFile)
  }
  let output = Pipe()
  process.standardInput = try FileHandle(forReadingFrom: stdinFile)
  process.standardOutput = output
  process.standardError = try FileHandle(forWritingTo: stderrFile)
  try process.run()
  let outData = output.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  let errData = try Data(contentsOf: stderrFile)
  return ToolResult(
    stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData, as: UTF8.self), status: process.terminationStatus)
}

/// One readable line on stderr, no crash report.
func expectCleanError(
  _ r: ToolResult, contains text: String, sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(r.status != 0, sourceLocation: sourceLocation)
  #expect(r.stderr.contains(text), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
  #expect(
    r.stderr.split(separator: "\n").count == 1, "stderr: \(r.stderr)",
    sourceLocation: sourceLocation)
  #expect(
    !r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"),
    sourceLocation: sourceLocation)
}

func temporaryFile(_ text: String, name: String) throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "gvae-tool-tests-\(ProcessInfo.processInfo.processIdentifier)-\(name)")
  try text.write(to: url, atomically: true, encoding: .utf8)
  return url
}

@Suite(.serialized) struct ParseToolTests {
  @Test func parsesArguments() throws {
    let r = try gvae(["parse", "CC", "c1ccccc1"])
    #expect(r.status == 0)
    #expect(
      r.stdout == "0 73 72 62 2 5 62 2 5\n"
        + "0 73 73 73 73 73 72 63 3 14 67 60 37 62 3 14 62 3 14 62 3 14 62 3 14 63 3 14 67 60 37\n")
  }

  @Test func parsesStdinAndPads() throws {
    let r = try gvae(["parse", "--grammar", "equation", "--pad"], stdin: "x / 3\n1/3+x+sin(x*x)\n")
    #expect(r.status == 0)
    #expect(
      r.stdout == "2 3 7 10 11 11 11 11 11 11 11 11 11 11 11\n0 0 2 3 8 10 7 5 1 3 7 7 11 11 11\n")
  }

  @Test func rulesFormat() throws {
    let r = try gvae(["parse", "--grammar", "equation", "--format", "rules", "x"])
    #expect(r.stdout == "3\tS -> T\n7\tT -> 'x'\n\n")
  }

  @Test func stopsAtFirstBadLine() throws {
    let r = try gvae(["parse"], stdin: "CC\nC(C\nCCC\n")
    #expect(r.stdout == "0 73 72 62 2 5 62 2 5\n")
    expectCleanError(r, contains: "line 2, column 4: unexpected end of input")
  }

  @Test func jsonReportsEveryLine() throws {
    let r = try gvae(["parse", "--format", "json"], stdin: "CC\nC%\n\nC\n")
    // Every line is reported in place; the bad ones make the exit status 1.
    #expect(r.status == 1)
    #expect(r.stderr.contains("2 of 4 inputs failed"))
    let lines = r.stdout.split(separator: "\n")
    #expect(lines.count == 4)
    #expect(lines[0] == #"{"input": "CC", "productions": [0, 73, 72, 62, 2, 5, 62, 2, 5]}"#)
    #expect(
      lines[1].hasPrefix(
        #"{"input": "C%", "error": {"line": 2, "column": 2, "message": "unexpected character '%'"#))
    #expect(
      lines[2] == #"{"input": "", "error": {"line": 3, "column": 0, "message": "empty input"}}"#)
    #expect(lines[3] == #"{"input": "C", "productions": [0, 72, 62, 2, 5]}"#)
  }

  @Test func inputErrors() throws {
    expectCleanError(
      try gvae(["parse", "C%C"]), contains: "line 1, column 2: unexpected character '%'")
    expectCleanError(try gvae(["parse", "CC)"]), contains: "column 3: unexpected ')'")
    expectCleanError(try gvae(["parse"], stdin: "CC\n\n"), contains: "line 2: empty input")
    expectCleanError(
      try gvae(["parse", "--max-len", "5", "CC"]),
      contains: "9 steps, more than the maximum length 5")
    expectCleanError(
      try gvae(["parse", "--grammar", "nonesuch", "C"]), contains: "cannot read grammar file")
  }

  @Test func reportsAmbiguity() throws {
    let file = try temporaryFile("S -> S S | 'a'\n", name: "ambiguous.cfg")
    let r = try gvae(["parse", "--grammar", file.path, "--report-ambiguity", "aaa", "a"])
    #expect(r.status == 0)
    #expect(r.stderr.contains("line 1: ambiguous"))
    #expect(r.stderr.contains("1 of 2 inputs ambiguous"))
  }
}

@Suite(.serialized) struct DeriveToolTests {
  @Test func derives() throws {
    var r = try gvae(["derive", "0 73 72 62 2 5 62 2 5 75 75"])
    #expect(r.status == 0 && r.stdout == "CC\n")
    r = try gvae(["derive", "--grammar", "equation"], stdin: "0 0 2 3 8 10 7 5 1 3 7 7\n")
    #expect(r.stdout == "1 / 3 + x + sin( x * x )\n")
    r = try gvae(["derive", "--grammar", "equation", "--compact", "0 0 2 3 8 10 7 5 1 3 7 7"])
    #expect(r.stdout == "1/3+x+sin(x*x)\n")
  }

  @Test func parseThenDeriveRoundTrips() throws {
    let smiles =
      "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1\nC[C@@H]1CC(Nc2cncc(-c3nncn3C)c2)C[C@@H](C)C1\n"
    let parsed = try gvae(["parse"], stdin: smiles)
    let derived = try gvae(["derive"], stdin: parsed.stdout)
    #expect(derived.stdout == smiles)
  }

  @Test func errors() throws {
    expectCleanError(try gvae(["derive", "0 73 72"]), contains: "incomplete derivation")
    expectCleanError(try gvae(["derive", "0 x"]), contains: "\"x\" is not a production index")
    expectCleanError(try gvae(["derive", "0 99"]), contains: "99 is not a production index")
    expectCleanError(try gvae(["derive", "5"]), contains: "does not expand smiles")
  }
}

@Suite(.serialized) struct GrammarToolTests {
  @Test func showsZinc() throws {
    let r = try gvae(["grammar", "show"])
    #expect(r.status == 0)
    #expect(r.stdout.contains("grammar zinc: 76 productions, start symbol smiles"))
    #expect(r.stdout.contains("29  BACH -> charge class    [masked: can never complete]"))
    #expect(r.stdout.contains("59  bond -> '\\'"))
    #expect(r.stdout.contains("75  Nothing -> None    [padding]"))
    #expect(r.stdout.contains("undefined non-terminals: class"))
    #expect(r.stdout.contains("masked productions: 29 31"))
  }

  @Test func badGrammarFiles() throws {
    let syntax = try temporaryFile("S -> 'a' | 'b\n", name: "syntax.cfg")
    expectCleanError(
      try gvae(["grammar", "show", "--grammar", syntax.path]),
      contains: "syntax.cfg:1:12: unterminated quoted terminal")
    let noBase = try temporaryFile("S -> S 'a'\n", name: "nobase.cfg")
    expectCleanError(
      try gvae(["parse", "--grammar", noBase.path, "a"]),
      contains: "nobase.cfg:1:1: start symbol S derives no terminal string")
  }

  @Test func warnsAboutUndefinedSymbols() throws {
    let file = try temporaryFile("S -> 'a' | X\nU -> 'u'\n", name: "undefined.cfg")
    let r = try gvae(["parse", "--grammar", file.path, "a"])
    #expect(r.status == 0 && r.stdout == "0\n")
    #expect(r.stderr.contains("non-terminal X is used but has no productions"))
    #expect(r.stderr.contains("non-terminal U is unreachable"))
  }
}

@Suite(.serialized) struct DatasetToolTests {
  @Test func generatesDistinctValidStrings() throws {
    let r = try gvae([
      "dataset", "generate", "--grammar", "equation", "-n", "200", "--max-len", "15", "--seed", "5",
    ])
    #expect(r.status == 0)
    let lines = r.stdout.split(separator: "\n").map(String.init)
    #expect(lines.count == 200 && Set(lines).count == 200)
    let parsed = try gvae(["parse", "--grammar", "equation", "--max-len", "15"], stdin: r.stdout)
    #expect(parsed.status == 0)
    let again = try gvae([
      "dataset", "generate", "--grammar", "equation", "-n", "200", "--max-len", "15", "--seed", "5",
    ])
    #expect(again.stdout == r.stdout)
  }

  @Test func impossibleRequest() throws {
    expectCleanError(
      try gvae(["dataset", "generate", "--grammar", "equation", "-n", "1000", "--max-len", "2"]),
      contains: "distinct strings")
  }
}
