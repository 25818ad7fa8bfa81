import ArgumentParser
import CFG
import Foundation
import Chemistry
import Engine
import GrammarVAE

struct EvaluateCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Reconstruction accuracy and prior validity by the paper's protocols.",
    discussion: """
      The first --test-count strings of --data are the held-out test set (train with the same \
      --hold-out); the rest is the training set for novelty. Reconstruction: each test string \
      encoded --encodings times from q(z|x), each encoding decoded --decodings times, exact \
      match (also reported with 5 decodings, SD-VAE's script). Prior: --prior-samples draws \
      from N(0, I), --prior-decodings decodings each. --reconstruction exact scores each \
      encoding by the probability that one decoding writes its string (teacher-forced, no \
      sampling): the protocol's expectation over decodings, at the cost of one decoding per \
      encoding; both prints the two side by side. --rdkit checks molecules with \
      tools/rdkit_valid.py (Python + RDKit); without them it reports 'rdkit: unavailable'.
      """)

  @OptionGroup var modelOption: ModelOption
  @Option(help: "Data file (the same as for training).") var data: String?
  @Option(help: "CSV column name or index.") var column: String?
  @Option(
    name: .customLong("test-file"),
    help: "Reconstruct the first --test-count strings of this file instead of those of --data.")
  var testFile: String?
  @Option(name: .customLong("test-count"), help: "Held-out strings at the start of --data.")
  var testCount: Int = 5000
  @Option(help: "Stochastic encodings per test string.") var encodings: Int = 10
  @Option(help: "Decodings per encoding.") var decodings: Int = 100
  @Option(
    help: ArgumentHelp(
      "Reconstruction by sampled decodings (the paper's protocol), by their exact expectation, or both.",
      valueName: "sampled|exact|both"))
  var reconstruction: ReconstructionMethod = .sampled
  @Option(name: .customLong("prior-samples"), help: "Draws from the prior.") var priorSamples: Int =
    1000
  @Option(name: .customLong("prior-decodings"), help: "Decodings per prior draw.")
  var priorDecodings: Int = 10
  @Flag(help: "Check molecules with RDKit (tools/rdkit_valid.py).") var rdkit = false
  @Flag(
    name: .customLong("length-budget"),
    help: "Decode with the length-budget mask (as sample/decode do); off: the paper's protocol.")
  var lengthBudget = false
  @Option(
    help: ArgumentHelp(
      "What every decoding obeys: none (the paper's protocol), grammar (the length budget) or"
        + " chemistry (valid molecules).",
      discussion: "Default: chemistry for SMILES-grammar models, else grammar with --length-budget, else none."))
  var constraints: DecodingConstraints?
  @Option(
    name: .customLong("prior-output"),
    help: "Write every prior decoding to this file, one per line (empty: unfinished).")
  var priorOutput: String?
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Output: text or json.") var format: OutputFormat = .text

  func validate() throws {
    guard testCount >= 0, encodings >= 1, decodings >= 1, priorSamples >= 0, priorDecodings >= 1
    else {
      throw ValidationError("counts must be positive (--test-count and --prior-samples may be 0)")
    }
    if testFile != nil && data == nil {
      throw ValidationError("--test-file needs --data (the training data, for novelty)")
    }
  }

  func run() throws {
    let model = try modelOption.load()
    let chosen = try DecodingConstraints.resolve(
      constraints, lengthBudget: lengthBudget ? true : nil, model: model,
      fallback: model.configuration.kind == .grammar && model.grammar.isSMILES ? .chemistry : .none)
    let (lengthBudget, constraint) = chosen.decoding(for: model)
    let start = Date()
    var report = EvaluationReport()
    var trainingSet = Set<String>()
    if let data {
      let lines: [(line: Int, text: String)]
      do { lines = try TextData.lines(path: data, column: column) } catch {
        throw fail(error.description)
      }
      var testLines = Array(lines.prefix(testCount))
      if let testFile {
        do { testLines = Array(try TextData.lines(path: testFile).prefix(testCount)) } catch {
          throw fail(error.description)
        }
      }
      let test = testLines.map(\.text).filter { s in
        (try? model.codec.encode(s)) != nil
      }
      if test.count < testLines.count {
        printError("gvae: \(testLines.count - test.count) test strings do not encode and are left out")
      }
      for l in lines.dropFirst(testFile == nil ? testCount : 0) {
        trainingSet.insert(model.codec.canonical(l.text))
      }
      if !test.isEmpty && reconstruction != .sampled {
        let r = try Evaluation.expectedReconstruction(
          model: model, strings: test, encodings: encodings, seed: seed,
          lengthBudget: lengthBudget, constraint: constraint
        ) { showProgress("expected reconstruction", $0, of: test.count) }
        report.testCount = test.count
        report.encodings = encodings
        report.reconstructionExpected = r.expected
        report.reconstructionMeanGreedy = r.meanGreedy
      }
      if !test.isEmpty && reconstruction != .exact {
        let r = try Evaluation.reconstruction(
          model: model, strings: test, encodings: encodings, decodings: decodings, seed: seed,
          lengthBudget: lengthBudget, constraint: constraint
        ) { showProgress("reconstruction", $0, of: test.count) }
        report.testCount = test.count
        report.encodings = encodings
        report.decodings = decodings
        report.reconstruction = r.accuracy
        report.reconstructionSDVAE = r.sdvae
        report.reconstructionSampled = true
        report.reconstructionMeanGreedy = r.meanGreedy
      }
    }
    if priorSamples > 0 {
      let outs = Evaluation.priorDecodings(
        model: model, samples: priorSamples, decodings: priorDecodings, seed: seed &+ 1,
        lengthBudget: lengthBudget, constraint: constraint)
      let strings = outs.compactMap(\.string)
      // The rest (RDKit, files, the report) is rank 0's.
      guard Cluster.world.isRoot else { return }
      if let priorOutput {
        let text = outs.map { ($0.string ?? "") + "\n" }.joined()
        do { try text.write(toFile: priorOutput, atomically: true, encoding: .utf8) } catch {
          throw fail("cannot write --prior-output \(priorOutput): \(error.localizedDescription)")
        }
      }
      report.priorSamples = priorSamples
      report.priorDecodings = priorDecodings
      report.priorComplete = Double(strings.count) / Double(outs.count)
      let valid = strings.filter { model.codec.isGrammarValid($0) }
      report.priorGrammarValid = Double(valid.count) / Double(outs.count)
      var counted = valid
      if model.configuration.kind == .grammar && model.grammar.isSMILES {
        counted = valid.filter { SMILES.check($0).isValid }
        report.priorChemistryValid = Double(counted.count) / Double(outs.count)
      }
      if rdkit {
        if let script = locateScript("rdkit_valid.py"),
          let flags = Evaluation.rdkitValid(valid, script: script)
        {
          counted = zip(valid, flags).filter(\.1).map(\.0)
          report.priorRDKitValid = Double(counted.count) / Double(outs.count)
          report.rdkit = "available"
        } else {
          report.rdkit = "unavailable"
        }
      }
      report.uniqueness = Double(Set(counted).count) / Double(max(counted.count, 1))
      if !trainingSet.isEmpty {
        report.novelty =
          Double(counted.filter { !trainingSet.contains($0) }.count) / Double(max(counted.count, 1))
      }
    }
    guard Cluster.world.isRoot else { return }
    report.lengthBudget = lengthBudget
    report.constraints = chosen.rawValue
    report.seconds = Date().timeIntervalSince(start)
    switch format {
    case .json:
      let e = JSONEncoder()
      e.outputFormatting = [.sortedKeys]
      print(String(decoding: try e.encode(report), as: UTF8.self))
    case .text:
      func pct(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
      if let e = report.reconstructionExpected {
        print(
          "reconstruction, expected over decodings (\(report.testCount) test strings, \(encodings) encodings, exact): \(pct(e))"
        )
      }
      if report.reconstructionSampled {
        print(
          "reconstruction (\(report.testCount) test strings, \(encodings) encodings × \(decodings) decodings): \(pct(report.reconstruction))"
        )
        print(
          "reconstruction (SD-VAE protocol, \(encodings) × 5): \(pct(report.reconstructionSDVAE))")
      }
      if report.testCount > 0 {
        print("reconstruction (mean, greedy): \(pct(report.reconstructionMeanGreedy))")
      }
      if report.priorSamples > 0 {
        print(
          "prior (\(priorSamples) draws × \(priorDecodings) decodings): complete \(pct(report.priorComplete)), grammar-valid \(pct(report.priorGrammarValid))"
        )
        if let v = report.priorChemistryValid { print("molecules (gvae check): \(pct(v))") }
        if rdkit {
          print("rdkit: " + (report.priorRDKitValid.map { "valid \(pct($0))" } ?? "unavailable"))
        }
        print(
          "uniqueness \(pct(report.uniqueness))"
            + (trainingSet.isEmpty ? "" : ", novelty \(pct(report.novelty))"))
      }
      print("constraints: \(report.constraints)")
      print(String(format: "time %.1f s", report.seconds))
    }
  }
}

/// `label: done/total` on a terminal (rank 0), ending the line when done.
func showProgress(_ label: String, _ done: Int, of total: Int) {
  guard isatty(2) != 0 && Cluster.world.isRoot else { return }
  FileHandle.standardError.write(Data("\r\(label): \(done)/\(total)\(done >= total ? "\n" : "")".utf8))
}

/// How `evaluate` measures reconstruction.
enum ReconstructionMethod: String, ExpressibleByArgument, CaseIterable { case sampled, exact, both }

/// Finds a script in `tools/`: next to or above the executable, then the source tree.
func locateScript(_ name: String) -> String? {
  var dirs: [URL] = []
  var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    .deletingLastPathComponent()
  for _ in 0..<6 {
    dirs.append(dir.appendingPathComponent("tools"))
    dir = dir.deletingLastPathComponent()
  }
  dirs.append(
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("tools"))
  return dirs.map { $0.appendingPathComponent(name).path }.first {
    FileManager.default.fileExists(atPath: $0)
  }
}
