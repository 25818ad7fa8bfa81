import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import LatentOptimization
import NN

struct OptimizeCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "optimize",
    abstract: "Bayesian optimisation in a model's latent space (Kusner et al. 2017, §4.3).",
    discussion: """
      Encodes --data (posterior means, or --latents), scores it, holds out --test-fraction \
      for the GP's test RMSE and log-likelihood, then runs --iterations rounds: fit the GP, \
      pick --batch points by expected improvement with the kriging believer, decode each \
      point --decodings times (sampling) and keep the most frequent valid string, score it.

      Objectives: expression (minimise the paper's fit to 1/3 + x + sin(x*x)); molecule \
      (maximise penalized logP via tools/penalized_logp.py and RDKit); anything else is a \
      shell command that reads one string per line and answers one score per line (nan or \
      invalid when it cannot), minimised unless --maximize.

      Prints JSON lines: {"event":"gp",...} per fit, one line per proposal as soon as it is \
      scored ({"iteration","index","string","score","valid","z"}), then {"event":"best",...}.
      """)

  @OptionGroup var modelOption: ModelOption
  @Option(help: "expression, molecule, or a scorer command.") var objective = "expression"
  @Flag(help: "Maximise a command objective (molecule always maximises).") var maximize = false
  @Option(help: "Strings whose latents and scores seed the GP (text or .gz, one per line).")
  var data: String
  @Option(help: "Precomputed scores of --data, one per line (nan for invalid).")
  var dataScores: String?
  @Option(help: "Precomputed latents of --data (e.g. from `gvae encode`), one row per line.")
  var latents: String?
  @Option(help: "Write the data's scores here (one per line, nan when invalid) for --data-scores.")
  var saveDataScores: String?
  @Option(help: "Use a seeded random subset of this many data strings.") var maxData: Int?
  @Option(help: "BO iterations.") var iterations = 5
  @Option(help: "Points per iteration.") var batch = 50
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Decodings per proposed point (the paper: 25).") var decodings = 25
  @Option(help: "Decoding temperature.") var temperature: Float = 1
  @OptionGroup var budget: LengthBudgetOption
  @OptionGroup var surrogate: SurrogateOptions
  @Option(
    help: ArgumentHelp(
      "every: refit the GP's hyperparameters each iteration (the paper); first: fit once, then"
        + " condition the same GP on every new point (exact given the hyperparameters)."))
  var refit: RefitPolicy = .every
  @Option(help: "Uniform candidates scored per batch point.") var candidates = 10_000
  @Option(help: "Best candidates refined by L-BFGS.") var restarts = 5
  @Option(name: .customLong("test-fraction"), help: "Held-out fraction for the GP scores.")
  var testFraction = 0.1
  @Option(help: "Python interpreter for the molecule helper.") var python = "python3"
  @Option(help: "Write the best score per iteration as an SVG line chart.") var plot: String?
  @Option(help: "Molecules: draw the best three to this PNG (RDKit).") var draw: String?

  func validate() throws {
    guard iterations >= 0, batch > 0, decodings > 0 else {
      throw ValidationError("--iterations must be non-negative, --batch and --decodings positive")
    }
    guard temperature > 0, temperature.isFinite else {
      throw ValidationError("--temperature must be positive")
    }
    guard candidates > 0, restarts >= 0 else {
      throw ValidationError("--candidates must be positive, --restarts non-negative")
    }
    guard testFraction >= 0 && testFraction < 1 else {
      throw ValidationError("--test-fraction must be in [0, 1)")
    }
    if let m = maxData, m < 2 { throw ValidationError("--max-data must be at least 2") }
    if draw != nil && objective != "molecule" {
      throw ValidationError("--draw needs --objective molecule")
    }
  }

  func run() throws {
    let started = Date()
    let out = OutputBuffer()
    // Under mpirun every rank runs the same loop on the same numbers (the GP fit on each,
    // the acquisition, decoding and scoring shared out); rank 0 alone prints and writes.
    let cluster = Cluster.world
    func emit(_ line: String) {
      guard cluster.isRoot else { return }
      out.write(line + "\n")
      out.flush()
    }
    let model = try modelOption.load()
    let decoding = try budget.resolve(for: model).decoding(for: model)
    let scorer = try Scorer(objective: objective, maximize: maximize, python: python)
    defer { scorer.close() }
    var rng = SeededRandom(seed: seed)

    // Data: strings, latents, scores.
    var strings: [String]
    do {
      strings = try TextData.lines(path: data).map(\.text)
    } catch {
      throw fail("--data: \(error)")
    }
    var given: [[Double]]? = nil
    if let latents {
      given = try readFeatureRows(latents, what: "latents")
      guard given!.count == strings.count else {
        throw fail("--latents has \(given!.count) rows for \(strings.count) data strings")
      }
    }
    var scores: [Double?]
    if let dataScores {
      let rows = try readScores(dataScores)
      guard rows.count == strings.count else {
        throw fail("--data-scores has \(rows.count) lines for \(strings.count) data strings")
      }
      scores = rows
    } else {
      // Each rank scores its contiguous share; NaN stands for "no score" in transit.
      let mine = try scorer.score(Array(strings[cluster.share(of: strings.count)])).map { $0 ?? .nan }
      scores = cluster.allGather(mine).map { $0.isNaN ? nil : $0 }
    }
    if let saveDataScores, cluster.isRoot {
      let text = scores.map { $0.map { "\($0)" } ?? "nan" }.joined(separator: "\n") + "\n"
      guard FileManager.default.createFile(atPath: saveDataScores, contents: Data(text.utf8)) else {
        throw fail("cannot write '\(saveDataScores)'")
      }
    }
    var keep = Array(strings.indices)
    if let m = maxData, m < keep.count {
      keep.shuffle(using: &rng)
      keep = Array(keep.prefix(m)).sorted()
    }
    keep = keep.filter { scores[$0] != nil }
    if given == nil { keep = keep.filter { (try? model.codec.encode(strings[$0])) != nil } }
    guard keep.count >= 2 else { throw fail("fewer than 2 data strings encode and score") }
    strings = keep.map { strings[$0] }
    let values = keep.map { scorer.internalValue(scores[$0]!) }
    let z: [[Double]]
    if let given {
      z = keep.map { given[$0] }
      guard z.allSatisfy({ $0.count == model.configuration.latentSize }) else {
        throw fail("--latents rows must have \(model.configuration.latentSize) values")
      }
    } else {
      // Whole chunks of 256 per rank: each row meets the rows one process batches it with.
      let Z = model.configuration.latentSize
      let chunks = cluster.share(of: (strings.count + 255) / 256)
      let rows = min(strings.count, chunks.lowerBound * 256)..<min(strings.count, chunks.upperBound * 256)
      let mu = cluster.allGather(try model.posterior(Array(strings[rows])).mean)
      z = (0..<strings.count).map { i in (0..<Z).map { Double(mu[i * Z + $0]) } }
    }
    let all = Matrix(rowVectors: z)
    let (trainIndex, testIndex) = splitIndices(all.rows, testFraction: testFraction, rng: &rng)
    var x = all.selecting(rows: trainIndex)
    var y = trainIndex.map { values[$0] }
    let test = (all.selecting(rows: testIndex), testIndex.map { values[$0] })
    let box = Box(boundingRowsOf: all)
    var options = AcquisitionOptions()
    options.candidates = candidates
    options.restarts = restarts

    var proposals: [(iteration: Int, string: String, score: Double)] = []
    var proposed = 0
    var validCount = 0
    let dataBest = scorer.externalValue(y.min()!)
    var bestPerIteration: [Double] = []
    var kept: GPPosterior? = nil
    for iteration in 1...max(1, iterations) where iterations > 0 {
      let t0 = Date()
      let fitted: (posterior: GPPosterior, rmse: Double, logLikelihood: Double)
      let points: [[Double]]
      do {
        if refit == .first, let kept = kept {
          fitted = try condition(kept, inputs: x, targets: y, test: test)
        } else {
          fitted = try fitSurrogate(surrogate.kind, inputs: x, targets: y, test: test, rng: &rng)
          kept = fitted.posterior
        }
        let t1 = Date()
        emit(
          "{\"event\":\"gp\",\"iteration\":\(iteration),\"train\":\(x.rows),\"test\":\(test.1.count),"
            + "\"rmse\":\(jsonNumber(fitted.rmse)),"
            + "\"test_log_likelihood\":\(jsonNumber(fitted.logLikelihood)),"
            + "\"seconds\":\(String(format: "%.2f", t1.timeIntervalSince(t0)))}")
        points = try selectBatch(
          fitted.posterior, count: batch, best: y.min()!, box: box, options: options, rng: &rng)
        emit(
          "{\"event\":\"batch\",\"iteration\":\(iteration),"
            + "\"seconds\":\(String(format: "%.2f", Date().timeIntervalSince(t1)))}")
      } catch {
        throw fail(error.description)
      }
      let decoded = model.decodeAcrossRanks(
        latents: points.map { $0.map { Float($0) } }, decodings: decodings,
        strategy: .sample(temperature: temperature), rng: &rng, lengthBudget: decoding.lengthBudget,
        constraint: decoding.constraint)
      // In rounds of one point per rank, each round printed before the next is scored: a
      // scorer that fails leaves every earlier proposal printed.
      var picked: [(String?, Double?)] = []
      for (k, p) in points.enumerated() {
        if k % cluster.size == 0 {
          let round = k..<min(points.count, k + cluster.size)
          picked = try pickAcrossRanks(round) { j in
            try scorer.mostFrequentValid(decoded[(j * decodings)..<((j + 1) * decodings)].compactMap(\.string))
          }
        }
        let (string, score) = picked[k % cluster.size]
        proposed += 1
        let valid = score.map { scorer.isValid($0) } ?? false
        let stringField: String = string.map { jsonString($0) } ?? "null"
        let scoreField: String = score.map { jsonNumber($0) } ?? "null"
        let zField: String = p.map { "\(Float($0))" }.joined(separator: ",")
        var fields = "\"iteration\":\(iteration),\"index\":\(k + 1),"
        fields += "\"string\":" + stringField + ",\"score\":" + scoreField
        fields += ",\"valid\":\(valid),\"z\":[" + zField + "]"
        emit("{" + fields + "}")
        if let score, scorer.isValid(score) {
          validCount += 1
          if let string { proposals.append((iteration, string, score)) }
        }
        if let score, let v = scorer.trainingValue(score) {
          x.appendRow(p)
          y.append(v)
        }
      }
      let these = proposals.filter { $0.iteration == iteration }.map(\.score)
      if let b = these.min(by: { scorer.better($0, $1) }) {
        bestPerIteration.append(b)
      } else {
        bestPerIteration.append(.nan)
      }
    }
    // Best three distinct strings, in the objective's sense.
    var seen = Set<String>()
    let ranked = proposals.sorted { scorer.better($0.score, $1.score) }.filter {
      seen.insert($0.string).inserted
    }
    let top = ranked.prefix(3)
    let average =
      proposals.isEmpty ? Double.nan : proposals.map(\.score).reduce(0, +) / Double(proposals.count)
    let bestList: [String] = top.map { p in
      "{\"string\":" + jsonString(p.string) + ",\"score\":" + jsonNumber(p.score)
        + ",\"iteration\":\(p.iteration)}"
    }
    let fraction: String = proposed > 0 ? jsonNumber(Double(validCount) / Double(proposed)) : "null"
    var summary = "{\"event\":\"best\",\"best\":[" + bestList.joined(separator: ",") + "]"
    summary += ",\"proposed\":\(proposed),\"valid\":\(validCount),\"valid_fraction\":" + fraction
    summary += ",\"average_score\":" + jsonNumber(average) + ",\"seed\":\(seed)"
    summary += ",\"seconds\":" + String(format: "%.1f", Date().timeIntervalSince(started)) + "}"
    emit(summary)
    guard cluster.isRoot else { return }
    if let plot {
      try writeCurve(bestPerIteration, reference: dataBest, to: plot, label: scorer.label)
    }
    if let draw, !top.isEmpty {
      try scorer.draw(top.map(\.string), to: draw, python: python)
    }
  }

  /// The posterior of `fitted`'s hyperparameters (and inducing points) given `(x, y)`.
  /// `pick(k)` for the points of `round` (at most one per rank: point k on rank k − first),
  /// every result on every rank, in order.
  func pickAcrossRanks(_ round: Range<Int>, _ pick: (Int) throws -> (String?, Double?)) throws -> [(String?, Double?)] {
    let cluster = Cluster.world
    guard cluster.size > 1 else { return try round.map(pick) }
    // A flag byte (bit 0 string, bit 1 score), the score's 8 bytes, the string.
    var bytes: [UInt8] = []
    if cluster.rank < round.count {
      let (s, v) = try pick(round.lowerBound + cluster.rank)
      bytes.append((s == nil ? 0 : 1) | (v == nil ? 0 : 2))
      withUnsafeBytes(of: (v ?? 0).bitPattern) { bytes += $0 }
      bytes += Array((s ?? "").utf8)
    }
    return cluster.allGather(bytes: bytes).prefix(round.count).map { b in
      let bits = b[1..<9].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
      return (b[0] & 1 != 0 ? String(decoding: b[9...], as: UTF8.self) : nil, b[0] & 2 != 0 ? Double(bitPattern: bits) : nil)
    }
  }

  func condition(
    _ fitted: GPPosterior, inputs x: Matrix, targets y: [Double], test: (Matrix, [Double])
  ) throws(GPError) -> (posterior: GPPosterior, rmse: Double, logLikelihood: Double) {
    let h = GPHyperparameters(
      kernel: fitted.kernel, mean: fitted.mean, logNoiseVariance: fitted.logNoiseVariance)
    let p: GPPosterior
    switch surrogate.surrogate {
    case .exact: p = try ExactGP(inputs: x, targets: y, hyperparameters: h).posterior()
    case .sparse:
      p = try SparseGP(hyperparameters: h, inducing: fitted.centers).state(inputs: x, targets: y)
        .posterior()
    }
    let (rmse, ll) = heldOutScores(p, inputs: test.0, targets: test.1)
    return (p, rmse, ll)
  }

  func readScores(_ path: String) throws -> [Double?] {
    guard let d = FileManager.default.contents(atPath: path) else {
      throw fail("cannot read --data-scores '\(path)'")
    }
    var lines = String(decoding: d, as: UTF8.self).split(
      separator: "\n", omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    var out: [Double?] = []
    for (n, line) in lines.enumerated() {
      let t = line.trimmingCharacters(in: .whitespaces)
      if ["nan", "invalid", "none", ""].contains(t.lowercased()) {
        out.append(nil)
      } else if let v = Double(t), v.isFinite {
        out.append(v)
      } else {
        throw fail("--data-scores '\(path)' line \(n + 1): '\(t.prefix(40))' is not a number")
      }
    }
    return out
  }
}

enum RefitPolicy: String, ExpressibleByArgument, CaseIterable { case every, first }

/// The objective behind `--objective`, in its own sense (minimise or maximise); the GP
/// always minimises `internalValue`.
final class Scorer {
  enum Kind {
    case expression(ExpressionObjective)
    case external(ExternalObjective)
  }
  let kind: Kind
  let maximizes: Bool
  let label: String

  init(objective: String, maximize: Bool, python: String) throws {
    switch objective {
    case "expression":
      kind = .expression(ExpressionObjective())
      maximizes = false
      label = "expression score (lower is better)"
    case "molecule":
      guard let script = findTool("penalized_logp.py") else {
        throw fail("tools/penalized_logp.py not found (set GVAE_TOOLS to the tools directory)")
      }
      kind = .external(try startScorer("\(shellQuote(python)) \(shellQuote(script))"))
      maximizes = true
      label = "penalized logP (higher is better)"
    default:
      kind = .external(try startScorer(objective))
      maximizes = maximize
      label = maximize ? "score (higher is better)" : "score (lower is better)"
    }
  }

  func score(_ strings: [String]) throws -> [Double?] {
    switch kind {
    case .expression(let o): return strings.map { o.score($0).score }
    case .external(let e):
      do { return try e.score(strings) } catch { throw fail("\(error)") }
    }
  }

  /// Expressions: an unparsable string scores the worst value, log(1001); it is a valid
  /// score for the GP but not a valid proposal.
  func isValid(_ score: Double) -> Bool {
    if case .expression = kind { return score < ExpressionObjective.worst }
    return true
  }

  /// The value the GP learns from a proposal's score (nil: not added).
  func trainingValue(_ score: Double) -> Double? { internalValue(score) }

  func internalValue(_ score: Double) -> Double { maximizes ? -score : score }
  func externalValue(_ v: Double) -> Double { maximizes ? -v : v }
  func better(_ a: Double, _ b: Double) -> Bool { maximizes ? a > b : a < b }

  /// The most frequent string among the decodings that scores as valid, with its score; when
  /// none does, the most frequent string with the invalid score (expressions) or nil.
  func mostFrequentValid(_ decodings: [String]) throws -> (String?, Double?) {
    var counts: [String: Int] = [:]
    var order: [String] = []
    for d in decodings {
      if counts[d] == nil { order.append(d) }
      counts[d, default: 0] += 1
    }
    // Most frequent first; ties by first appearance.
    let ranked = order.enumerated().sorted {
      counts[$0.element]! != counts[$1.element]!
        ? counts[$0.element]! > counts[$1.element]! : $0.offset < $1.offset
    }.map(\.element)
    let scores = try score(ranked)
    for (s, v) in zip(ranked, scores) { if let v, isValid(v) { return (s, v) } }
    if case .expression = kind { return (ranked.first, ExpressionObjective.worst) }
    return (ranked.first, nil)
  }

  func draw(_ smiles: [String], to path: String, python: String) throws {
    guard let script = findTool("penalized_logp.py") else {
      throw fail("tools/penalized_logp.py not found")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = [
      "-c",
      "\(shellQuote(python)) \(shellQuote(script)) --draw \(shellQuote(path)) "
        + smiles.map(shellQuote).joined(separator: " "),
    ]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
      throw fail("drawing the molecules failed (exit \(p.terminationStatus))")
    }
  }

  func close() { if case .external(let e) = kind { e.close() } }
}

func startScorer(_ command: String) throws -> ExternalObjective {
  do { return try ExternalObjective(command: command) } catch { throw fail("\(error)") }
}

func shellQuote(_ s: String) -> String {
  "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// `$GVAE_TOOLS/name`, else `tools/name` next to or above the executable, else in the source tree.
func findTool(_ name: String) -> String? {
  var dirs: [String] = []
  if let env = ProcessInfo.processInfo.environment["GVAE_TOOLS"], !env.isEmpty { dirs.append(env) }
  var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    .deletingLastPathComponent()
  for _ in 0..<6 {
    dirs.append(dir.appendingPathComponent("tools").path)
    dir = dir.deletingLastPathComponent()
  }
  dirs.append(
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("tools").path)
  for d in dirs {
    let p = (d as NSString).appendingPathComponent(name)
    if FileManager.default.fileExists(atPath: p) { return p }
  }
  return nil
}

/// A line chart of the best proposal's score in each iteration (from 1; NaN: none valid),
/// with the training data's best as a dashed line.
func writeCurve(_ values: [Double], reference: Double, to path: String, label: String) throws {
  let w = 480.0
  let h = 300.0
  let (left, right, top, bottom) = (70.0, 20.0, 30.0, 50.0)
  let finite = values.filter(\.isFinite) + [reference]
  let lo = finite.min()!
  let hi = finite.max()!
  let span = hi - lo > 0 ? hi - lo : 1
  func px(_ i: Int) -> Double {
    left + (w - left - right) * Double(i) / Double(max(1, values.count - 1))
  }
  func py(_ v: Double) -> Double { top + (h - top - bottom) * (1 - (v - lo) / span) }
  var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\">\n"
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
  svg +=
    "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
  svg +=
    "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
  svg += "<line x1=\"\(left)\" y1=\"\(py(reference))\" x2=\"\(w - right)\" y2=\"\(py(reference))\" "
  svg += "stroke=\"gray\" stroke-dasharray=\"5,4\"/>\n"
  svg += "<text x=\"\(w - right)\" y=\"\(py(reference) - 5)\" font-size=\"11\" text-anchor=\"end\" "
  svg += "fill=\"gray\">best in the data</text>\n"
  let pts = values.enumerated().filter { $0.element.isFinite }.map {
    "\(px($0.offset)),\(py($0.element))"
  }
  svg +=
    "<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\" points=\"\(pts.joined(separator: " "))\"/>\n"
  for (i, v) in values.enumerated() {
    if v.isFinite {
      svg += "<circle cx=\"\(px(i))\" cy=\"\(py(v))\" r=\"3\" fill=\"steelblue\"/>\n"
    }
    svg +=
      "<text x=\"\(px(i))\" y=\"\(h - bottom + 18)\" font-size=\"12\" text-anchor=\"middle\">\(i + 1)</text>\n"
  }
  for v in [lo, hi] {
    svg +=
      "<text x=\"\(left - 6)\" y=\"\(py(v) + 4)\" font-size=\"12\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
  }
  svg +=
    "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 10)\" font-size=\"13\" text-anchor=\"middle\">iteration</text>\n"
  svg += "<text x=\"\(left)\" y=\"18\" font-size=\"13\">best proposal: \(label)</text>\n</svg>\n"
  guard FileManager.default.createFile(atPath: path, contents: Data(svg.utf8)) else {
    throw fail("cannot write '\(path)'")
  }
}
