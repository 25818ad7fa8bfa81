// Decoding with and without the chemistry constraint, in the same run: the time ratio, the
// validity of what comes out, and how often the constraint changes a decode that was already
// a molecule.
import CFG
import Chemistry
import Engine
import Foundation
import GrammarVAE

func runDecodeBenchmarks(_ options: BenchOptions) {
  if let path = options["--molecules"] {
    runRefusalCount(path: path)
    return
  }
  runAdviseBenchmark(runs: options.int("--runs") ?? 3)
  let path = options["--model"] ?? "Models/zinc.safetensors"
  let count = options.int("--count") ?? 200
  let runs = options.int("--runs") ?? 3
  let model: VAEModel
  do { model = try VAEModel.load(path: path) } catch {
    FileHandle.standardError.write(Data("gvae-bench: \(error)\n".utf8))
    exit(1)
  }
  // --nodes and --tries: the search's node limit and the refusals per step (product defaults).
  let search = ConstraintSearch(
    grammar: model.grammar, constraint: SMILESConstraint(grammar: model.grammar), nodeLimit: options.int("--nodes") ?? 20)
  let tries = options.int("--tries") ?? 2
  var rng = SeededRandom(seed: 11)
  let Z = model.configuration.latentSize
  let z = (0..<count).map { _ in (0..<Z).map { _ in rng.nextNormal() } }
  func decode(
    _ constrained: Bool, _ strategy: DecodingStrategy, seed: UInt64, plainFirst: Bool = true
  ) -> [DecodedString] {
    var r = SeededRandom(seed: seed)
    return model.decode(
      latents: z, strategy: strategy, rng: &r, lengthBudget: true,
      constraint: constrained ? search : nil, constraintTries: tries, plainFirst: plainFirst)
  }
  // Interleaved runs so both see the same machine.
  var times: [[Double]] = [[], []]
  var outputs: [[DecodedString]] = [[], []]
  _ = decode(false, .sample(temperature: 1), seed: 0)
  for run in 0..<runs {
    for (k, constrained) in [false, true].enumerated() {
      let start = DispatchTime.now().uptimeNanoseconds
      let out = decode(constrained, .sample(temperature: 1), seed: UInt64(run))
      times[k].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
      if run == 0 { outputs[k] = out }
    }
  }
  let medians = times.map { t in t.sorted()[t.count / 2] }
  for (k, name) in ["decode-grammar", "decode-chemistry"].enumerated() {
    let strings = outputs[k].compactMap(\.string)
    let valid = strings.filter { SMILES.check($0).isValid }
    report(
      name, medianSeconds: medians[k],
      [
        "model": path, "latents": count, "per_latent_ms": 1000 * medians[k] / Double(count),
        "valid_fraction": Double(valid.count) / Double(max(count, 1)),
        "mean_smiles_length": Double(valid.map(\.count).reduce(0, +)) / Double(max(valid.count, 1)),
        "unique_fraction": Double(Set(valid).count) / Double(max(valid.count, 1)),
      ])
  }
  // Greedy decodes that are molecules already: does the constraint leave them alone? The
  // shipped two-pass decoder by construction; the one-pass variant for comparison.
  // Greedy decoding (as `reconstruct` of posterior means), timed the same way.
  var greedyTimes: [[Double]] = [[], []]
  for _ in 0..<runs {
    for (k, constrained) in [false, true].enumerated() {
      let start = DispatchTime.now().uptimeNanoseconds
      _ = decode(constrained, .greedy, seed: 0)
      greedyTimes[k].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
  }
  let greedyMedians = greedyTimes.map { t in t.sorted()[t.count / 2] }
  let plain = decode(false, .greedy, seed: 0)
  func unchanged(_ constrained: [DecodedString]) -> (Double, Int) {
    var molecules = 0
    var same = 0
    for (a, b) in zip(plain, constrained) {
      guard let s = a.string, SMILES.check(s).isValid else { continue }
      molecules += 1
      if b.string == s { same += 1 }
    }
    return (Double(same) / Double(max(molecules, 1)), molecules)
  }
  let (twoPass, molecules) = unchanged(decode(true, .greedy, seed: 0))
  var onePassTimes: [Double] = []
  var onePassValid = 0
  for run in 0..<runs {
    let start = DispatchTime.now().uptimeNanoseconds
    let out = decode(true, .sample(temperature: 1), seed: UInt64(run), plainFirst: false)
    onePassTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    if run == 0 { onePassValid = out.compactMap(\.string).filter { SMILES.check($0).isValid }.count }
  }
  let onePass = onePassTimes.sorted()[onePassTimes.count / 2]
  let (onePassUnchanged, _) = unchanged(decode(true, .greedy, seed: 0, plainFirst: false))
  report(
    "decode-chemistry-ratio", medianSeconds: medians[1],
    [
      "ratio_to_grammar": medians[1] / medians[0],
      "greedy_seconds_grammar": greedyMedians[0], "greedy_seconds_chemistry": greedyMedians[1],
      "greedy_ratio_to_grammar": greedyMedians[1] / greedyMedians[0],
      "greedy_molecules_unchanged": twoPass,
      "greedy_molecules": molecules,
      "one_pass_ratio_to_grammar": onePass / medians[0],
      "one_pass_valid_fraction": Double(onePassValid) / Double(max(count, 1)),
      "one_pass_greedy_molecules_unchanged": onePassUnchanged,
    ])
}

/// Cost of judging one SMILES prefix (the constraint's unit of work): every prefix of the
/// sample molecules, judged `runs` times.
func runAdviseBenchmark(runs: Int) {
  let path = "Datasets/zinc_sample.smi"
  guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
    FileHandle.standardError.write(Data("gvae-bench: cannot read \(path)\n".utf8))
    exit(1)
  }
  let molecules = text.split(separator: "\n").map { Array($0.utf8) }
  let prefixes = molecules.flatMap { m in (1...m.count).map { Array(m[..<$0]) } }
  var times: [Double] = []
  var open = 0
  for _ in 0..<runs {
    let start = DispatchTime.now().uptimeNanoseconds
    open = 0
    for p in prefixes where SMILES.advise(prefix: p).status != .dead { open += 1 }
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
  }
  let median = times.sorted()[times.count / 2]
  report(
    "smiles-advise", medianSeconds: median,
    [
      "prefixes": prefixes.count, "per_prefix_us": 1e6 * median / Double(prefixes.count),
      "mean_prefix_bytes": Double(prefixes.map(\.count).reduce(0, +)) / Double(prefixes.count),
      "not_dead": open,
    ])
}

/// Molecules the checker accepts that the constraint would refuse: the whole string not judged
/// complete, or some prefix judged dead (a decoder under the constraint could never write it).
/// One SMILES per line in `path`; the first examples go to stderr.
func runRefusalCount(path: String) {
  guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
    FileHandle.standardError.write(Data("gvae-bench: cannot read \(path)\n".utf8))
    exit(1)
  }
  var valid = 0
  var refusedWhole = 0
  var refusedPrefix = 0
  var shown = 0
  let start = DispatchTime.now().uptimeNanoseconds
  for line in text.split(separator: "\n") {
    let s = String(line.split(separator: " ").first ?? "")
    guard !s.isEmpty, SMILES.check(s).isValid else { continue }
    valid += 1
    let bytes = Array(s.utf8)
    var why: String? = nil
    if SMILES.advise(prefix: bytes).status != .complete {
      refusedWhole += 1
      why = "whole string"
    } else if let k = (1..<bytes.count).first(where: { SMILES.advise(prefix: Array(bytes[..<$0])).status == .dead }) {
      refusedPrefix += 1
      why = "prefix of \(k) bytes"
    }
    if let why, shown < 20 {
      shown += 1
      FileHandle.standardError.write(Data("refused (\(why)): \(s)\n".utf8))
    }
  }
  let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  report(
    "constraint-refusals", medianSeconds: seconds,
    ["molecules": path, "checker_valid": valid, "refused_whole": refusedWhole, "refused_prefix": refusedPrefix])
}
