// End-to-end tests of the model commands (train, encode, decode, sample, reconstruct,
// interpolate, evaluate) on a tiny model trained by the binary itself: no /work/shared, no Python.
import Foundation
import Testing

/// Trains a tiny expression model once per test process and returns its path.
let tinyModelPath: Result<String, Error> = Result {
  let data =
    [
      "x", "1", "x + 1", "sin(x)", "x * x", "exp(x)", "x / 2", "3 * x", "sin(x + 1)", "x + x + 1",
      "exp(2)", "x * 3", "2 + x", "x + 3",
    ].joined(separator: "\n") + "\nnot an expression\n"
  let file = try temporaryFile(data, name: "tiny-\(UUID().uuidString).txt")
  let model = file.deletingPathExtension().path + ".safetensors"
  let r = try gvae([
    "train", "--grammar", "equation", "--preset", "tiny", "--data", file.path, "--output", model,
    "--epochs", "3", "--batch-size", "4", "--seed", "3", "--validation-fraction", "0.2",
  ])
  guard r.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: ["stderr": r.stderr]) }
  return model
}

@Suite struct ModelToolTests {
  func model() throws -> String { try tinyModelPath.get() }

  @Test func trainWritesModelLogPlotAndReportsSkippedLines() throws {
    let path = try model()
    #expect(FileManager.default.fileExists(atPath: path))
    #expect(FileManager.default.fileExists(atPath: path + ".checkpoint"))
    let log = try String(contentsOfFile: path + ".log.jsonl", encoding: .utf8)
    #expect(log.contains("\"event\":\"epoch\""))
    let svg = try String(contentsOfFile: path + ".loss.svg", encoding: .utf8)
    #expect(svg.hasPrefix("<svg"))
  }

  /// `--bf16` trains the expression preset (its GRU products are large enough to take the
  /// bfloat16 kernel) to a finite loss on AVX512-BF16 CPUs, and is a clear error elsewhere.
  @Test func trainWithBFloat16Products() throws {
    let forms = ["x", "x + 1", "sin(x) * 2", "x * x + 3", "exp(x) / 2", "x / 3", "sin(x + 1)", "3 * x"]
    let file = try temporaryFile(
      (0..<128).map { forms[$0 % forms.count] }.joined(separator: "\n") + "\n",
      name: "bf16-\(UUID().uuidString).txt")
    let out = file.deletingPathExtension().path + ".safetensors"
    let r = try gvae([
      "train", "--grammar", "equation", "--preset", "equation", "--data", file.path, "--output", out,
      "--epochs", "1", "--batch-size", "64", "--seed", "1", "--validation-fraction", "0", "--bf16",
    ])
    let cpu = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
    if cpu.contains("avx512_bf16") {
      #expect(r.status == 0, "\(r.stderr)")
      let log = try String(contentsOfFile: out + ".log.jsonl", encoding: .utf8)
      #expect(log.contains("\"event\":\"epoch\""))
      #expect(!log.contains("nan") && !log.contains("inf"))
    } else {
      #expect(r.status != 0 && r.stderr.contains("AVX512-BF16"), "\(r.stderr)")
    }
  }

  /// `--lr` with `--resume` replaces the checkpoint's rate (a sitting lowers it); without it
  /// the checkpoint's rate continues.
  @Test func resumeTakesANewLearningRate() throws {
    let file = try temporaryFile("x + 1\nsin(x)\nx * x\nexp(x)\nx / 2\n3 * x\n", name: "lr-\(UUID().uuidString).txt")
    let out = file.deletingPathExtension().path + ".safetensors"
    func train(_ epochs: Int, _ extra: [String]) throws -> ToolResult {
      try gvae([
        "train", "--grammar", "equation", "--preset", "tiny", "--data", file.path, "--output", out,
        "--epochs", String(epochs), "--batch-size", "2", "--validation-fraction", "0.2",
      ] + extra)
    }
    func rates() throws -> [Double] {
      try String(contentsOfFile: out + ".log.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
        guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
          o["event"] as? String == "epoch"
        else { return nil }
        return try #require(o["learningRate"] as? Double)
      }
    }
    #expect(try train(1, ["--lr", "0.002"]).status == 0)
    let same = try train(2, ["--resume"])
    #expect(same.status == 0 && !same.stderr.contains("(--lr)"), "\(same.stderr)")
    let lowered = try train(3, ["--resume", "--lr", "0.0001"])
    #expect(lowered.status == 0 && lowered.stderr.contains("-> 0.0001 (--lr)"), "\(lowered.stderr)")
    let r = try rates()
    #expect(r.count == 3, "\(r)")
    #expect(abs(r[1] - 0.002) < 1e-9 && abs(r[2] - 0.0001) < 1e-9, "\(r)")
  }

  @Test func trainReportsUnparseableLinesWithLineNumbers() throws {
    let file = try temporaryFile("x + 1\nx +\nsin(x)\n", name: "bad-\(UUID().uuidString).txt")
    let out = file.deletingPathExtension().path + ".safetensors"
    let r = try gvae([
      "train", "--grammar", "equation", "--preset", "tiny", "--data", file.path, "--output", out,
      "--epochs", "1", "--batch-size", "2", "--validation-fraction", "0",
    ])
    #expect(r.status == 0)
    #expect(r.stderr.contains(":2: skipped"))
  }

  @Test func encodePrintsOneVectorPerLine() throws {
    let r = try gvae(["encode", "--model", try model(), "x + 1", "sin(x)"])
    #expect(r.status == 0)
    let lines = r.stdout.split(separator: "\n")
    #expect(lines.count == 2)
    #expect(
      lines.allSatisfy {
        $0.split(separator: " ").count == 8
          && $0.split(separator: " ").allSatisfy { Float($0) != nil }
      })
    let json = try gvae(
      ["encode", "--model", try model(), "--format", "json", "--stochastic"], stdin: "x\n")
    #expect(json.stdout.hasPrefix("{\"input\":\"x\",\"z\":["))
  }

  @Test func decodeSampleReconstructInterpolate() throws {
    let m = try model()
    let enc = try gvae(["encode", "--model", m, "x * x"])
    let dec = try gvae(["decode", "--model", m], stdin: enc.stdout)
    #expect(dec.status == 0)
    #expect(dec.stdout.split(separator: "\n", omittingEmptySubsequences: false).count == 2)
    let sample = try gvae(["sample", "--model", m, "-n", "50", "--seed", "4"])
    #expect(sample.status == 0)
    let strings = sample.stdout.split(separator: "\n").map(String.init)
    #expect(strings.count == 50)
    let parsed = try gvae(["parse", "--grammar", "equation"], stdin: sample.stdout)
    #expect(parsed.status == 0, "sampled strings must parse: \(parsed.stderr)")
    let rec = try gvae(["reconstruct", "--model", m, "--format", "json", "x + 1"])
    #expect(rec.stdout.contains("\"input\":\"x + 1\""))
    let inter = try gvae(["interpolate", "--model", m, "--steps", "4", "x", "sin(x)"])
    #expect(inter.status == 0)
    #expect(inter.stdout.split(separator: "\n", omittingEmptySubsequences: false).count == 5)
  }

  @Test func evaluateWithoutRDKit() throws {
    let file = try temporaryFile(
      "x + 1\nsin(x)\nx * x\nexp(x)\n", name: "eval-\(UUID().uuidString).txt")
    let r = try gvae([
      "evaluate", "--model", try model(), "--data", file.path, "--test-count", "2",
      "--encodings", "2", "--decodings", "3", "--prior-samples", "5", "--prior-decodings", "2",
      "--format", "json",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("\"reconstruction\":"))
    #expect(r.stdout.contains("\"priorGrammarValid\":"))
    #expect(!r.stdout.contains("reconstructionExpected"))
    // The exact expectation alone: no sampled figure is printed, and the expectation is a
    // fraction.
    let e = try gvae([
      "evaluate", "--model", try model(), "--data", file.path, "--test-count", "2",
      "--encodings", "2", "--prior-samples", "0", "--reconstruction", "exact",
    ])
    #expect(e.status == 0, "\(e.stderr)")
    #expect(e.stdout.contains("expected over decodings (2 test strings, 2 encodings, exact): "))
    #expect(!e.stdout.contains("SD-VAE"))
  }

  /// A `python3` without RDKit exits before reading what we send: `--rdkit` then reports
  /// "unavailable" (it used to die of SIGPIPE on the next write).
  @Test func rdkitWithABrokenPythonIsUnavailableNotACrash() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nopython-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let fake = dir.appendingPathComponent("python3")
    try "#!/bin/sh\nexit 1\n".write(to: fake, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake.path)
    let path = dir.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
    // 12,000 decodings: more than a pipe buffer, so the writer meets the closed pipe.
    let r = try gvae(
      [
        "evaluate", "--model", try model(), "--test-count", "0", "--prior-samples", "3000",
        "--prior-decodings", "4", "--rdkit", "--format", "json",
      ], environment: ["PATH": path])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("\"rdkit\":\"unavailable\""), "\(r.stdout)")
  }

  @Test func badInputIsAOneLineErrorNeverACrash() throws {
    let m = try model()
    let cases: [([String], String, String)] = [
      (["encode", "--model", m, "x +"], "", "line 1: column 4"),
      (["encode", "--model", m, "x + y"], "", "line 1: column 5"),
      (["decode", "--model", m], "1 2 3\n", "expected 8 numbers"),
      (["decode", "--model", m], "1 2 3 4 5 6 7 abc\n", "\"abc\" is not a finite number"),
      (["decode", "--model", m], "1 2 3 4 5 6 7 nan\n", "not a finite number"),
      (["sample", "--model", m, "-n", "-3"], "", "-n"),
      (["sample", "--model", m, "--temperature", "0"], "", "--temperature"),
      (["decode", "--model", m, "--temperature", "-1"], "", "--temperature"),
      (["interpolate", "--model", m, "--steps", "1", "x", "x"], "", "--steps"),
      (["encode", "--model", "/nonexistent/model.safetensors", "x"], "", "no model file"),
      (["encode", "--model", m, "--grammar", "zinc", "x"], "", "different production order"),
      (
        ["train", "--data", "/nonexistent.txt", "--output", "/tmp/x.safetensors"], "",
        "no such file"
      ),
      (["train", "--data", "x.txt", "--output", "o", "--epochs", "0"], "", "--epochs"),
      (["evaluate", "--model", m, "--encodings", "0"], "", "counts must be positive"),
      (["evaluate", "--model", m, "--reconstruction", "guess"], "", "guess"),
    ]
    for (args, stdin, text) in cases {
      let r = try gvae(args, stdin: stdin)
      #expect(r.status != 0, "\(args) should fail")
      #expect(r.status < 128, "\(args) crashed with status \(r.status)")
      #expect(r.stderr.contains(text), "\(args): stderr was \(r.stderr)")
      #expect(!r.stderr.contains("Fatal error"), "\(args)")
    }
    // A corrupt model file.
    let corrupt = try temporaryFile(
      "not a model at all", name: "corrupt-\(UUID().uuidString).safetensors")
    let r = try gvae(["encode", "--model", corrupt.path, "x"])
    #expect(r.status == 1)
    #expect(r.stderr.contains("not a valid model file"))
    #expect(r.stderr.split(separator: "\n").count == 1)
  }

  @Test func missingShippedModelNamesWhereItLooked() throws {
    let empty = FileManager.default.temporaryDirectory.appendingPathComponent(
      "empty-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    let r = try gvaeWithEnvironment(
      ["encode", "--model", "zinc-char", "C"], ["GVAE_MODELS": empty.path])
    #expect(r.status == 1)
    #expect(r.stderr.contains("shipped model 'zinc-char' not found; looked in: \(empty.path)"))
  }
}

/// Runs gvae with extra environment variables.
func gvaeWithEnvironment(_ arguments: [String], _ env: [String: String]) throws -> ToolResult {
  let binary = try #require(gvaeBinary)
  let p = Process()
  p.executableURL = binary
  p.arguments = arguments
  p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
  let out = Pipe()
  let err = Pipe()
  p.standardOutput = out
  p.standardError = err
  p.standardInput = FileHandle.nullDevice
  try p.run()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return ToolResult(
    stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self),
    status: p.terminationStatus)
}

/// The shipped models, when present in `Models/` (skipped in a checkout without them).
@Suite struct ShippedModelToolTests {
  static let modelsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Models")

  static func has(_ name: String) -> Bool {
    FileManager.default.fileExists(
      atPath: modelsDirectory.appendingPathComponent(name + ".safetensors").path)
  }

  @Test(.enabled(if: has("zinc"))) func zincEncodesToFiftySixNumbers() throws {
    let r = try gvae(["encode", "c1ccccc1"])
    #expect(r.status == 0, "\(r.stderr)")
    let numbers = r.stdout.split(separator: "\n").first?.split(separator: " ") ?? []
    #expect(numbers.count == 56)
    #expect(numbers.allSatisfy { Float($0) != nil })
  }

  @Test(.enabled(if: has("zinc"))) func zincSamplesParse() throws {
    let r = try gvae(["sample", "-n", "20", "--seed", "2"])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.split(separator: "\n").count == 20)
    let p = try gvae(["parse"], stdin: r.stdout)
    #expect(p.status == 0, "\(p.stderr)")
  }

  /// The chemistry constraint is the default for SMILES models: every sample is a molecule.
  @Test(.enabled(if: has("zinc"))) func zincSamplesAreMolecules() throws {
    for (args, n) in [(["sample", "-n", "30", "--seed", "5"], 30), (["sample", "-n", "10", "--greedy", "--seed", "6"], 10)] {
      let r = try gvae(args)
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout.split(separator: "\n").count == n)
      let c = try gvae(["check"], stdin: r.stdout)
      #expect(c.status == 0, "\(c.stdout)")
    }
    let z = try gvae(["encode", "CC(=O)Nc1ccc(O)cc1"])
    let d = try gvae(["decode", "--constraints", "chemistry"], stdin: z.stdout)
    #expect(d.status == 0, "\(d.stderr)")
    #expect(try gvae(["check"], stdin: d.stdout).status == 0)
  }

  @Test(.enabled(if: has("zinc") && has("equation"))) func contradictoryConstraintsAreErrors() throws {
    let a = try gvae(["sample", "--constraints", "chemistry", "--no-length-budget"])
    #expect(a.status != 0)
    #expect(a.stderr.contains("--no-length-budget contradicts --constraints chemistry"), "\(a.stderr)")
    let b = try gvae(["sample", "--model", "equation", "--constraints", "chemistry"])
    #expect(b.status != 0)
    #expect(b.stderr.contains("needs a SMILES grammar"), "\(b.stderr)")
    let c = try gvae(["sample", "--constraints", "valence"])
    #expect(c.status != 0)
    #expect(c.stderr.contains("valence"), "\(c.stderr)")
  }

  @Test(.enabled(if: has("equation"))) func equationSamplesParse() throws {
    let r = try gvae(["sample", "--model", "equation", "-n", "200", "--seed", "2"])
    #expect(r.status == 0)
    #expect(r.stdout.split(separator: "\n").count == 200)
    let p = try gvae(["parse", "--grammar", "equation"], stdin: r.stdout)
    #expect(p.status == 0, "\(p.stderr)")
  }

  @Test(.enabled(if: has("equation-char"))) func characterModelRuns() throws {
    let r = try gvae(["reconstruct", "--model", "equation-char", "x + 1"])
    #expect(r.status == 0, "\(r.stderr)")
  }
}
