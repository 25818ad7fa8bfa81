import ArgumentParser
import Engine
import Foundation
import LatentOptimization

struct GPCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gp",
    abstract: "Gaussian-process regression on a features file (fit, then predict).",
    subcommands: [GPFitCommand.self, GPPredictCommand.self, GPProposeCommand.self])
}

/// `--surrogate` and the sparse GP's training settings, shared by `gp fit` and `optimize`.
struct SurrogateOptions: ParsableArguments {
  @Option(help: "sparse (FITC, minibatch Adam) or exact (marginal likelihood by L-BFGS).")
  var surrogate: SurrogateChoice = .sparse
  @Option(help: "Inducing points of the sparse GP.") var inducing = 500
  @Option(help: "Adam epochs of the sparse GP.") var epochs = 50
  @Option(name: .customLong("gp-batch"), help: "Minibatch size of the sparse GP.")
  var gpBatch = 5000
  @Option(name: .customLong("gp-lr"), help: "Adam learning rate of the sparse GP.")
  var gpLearningRate = 5e-4

  func validate() throws {
    guard inducing > 0, epochs >= 0, gpBatch > 0, gpLearningRate > 0, gpLearningRate.isFinite
    else { throw ValidationError("--inducing, --gp-batch and --gp-lr must be positive") }
  }

  var kind: SurrogateKind {
    switch surrogate {
    case .exact: return .exact
    case .sparse:
      var o = SparseGP.TrainingOptions()
      o.inducingPoints = inducing
      o.epochs = epochs
      o.batchSize = gpBatch
      o.learningRate = gpLearningRate
      return .sparse(o)
    }
  }
}

enum SurrogateChoice: String, ExpressibleByArgument, CaseIterable { case sparse, exact }

/// Fits a surrogate to the training part and returns its posterior and the held-out scores.
func fitSurrogate(
  _ kind: SurrogateKind, inputs x: Matrix, targets y: [Double], test: (Matrix, [Double]),
  rng: inout SeededRandom, progress: (Int, Double) -> Void = { _, _ in }
) throws(GPError) -> (posterior: GPPosterior, rmse: Double, logLikelihood: Double) {
  let p = try fitPosterior(inputs: x, targets: y, kind: kind, rng: &rng, progress: progress)
  let (rmse, ll) = heldOutScores(p, inputs: test.0, targets: test.1)
  return (p, rmse, ll)
}

/// Reads rows of numbers (spaces or commas between them) from a file or "-" (stdin).
func readFeatureRows(_ path: String, what: String) throws -> [[Double]] {
  let text: String
  if path == "-" {
    text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
  } else {
    guard let d = FileManager.default.contents(atPath: path) else {
      throw fail("cannot read \(what) file '\(path)'")
    }
    text = String(decoding: d, as: UTF8.self)
  }
  var rows: [[Double]] = []
  for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
    let fields = line.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" || $0 == "\r" })
    if fields.isEmpty { continue }
    var row: [Double] = []
    for f in fields {
      guard let v = Double(f), v.isFinite else {
        throw fail("\(what) '\(path)' line \(n + 1): '\(f.prefix(40))' is not a finite number")
      }
      row.append(v)
    }
    if let first = rows.first, first.count != row.count {
      throw fail(
        "\(what) '\(path)' line \(n + 1): \(row.count) values, earlier rows have \(first.count)")
    }
    rows.append(row)
  }
  return rows
}

/// A seeded random split: (train indices, test indices).
func splitIndices(_ n: Int, testFraction: Double, rng: inout SeededRandom) -> ([Int], [Int]) {
  var order = Array(0..<n)
  order.shuffle(using: &rng)
  let t = testFraction > 0 ? max(1, Int((Double(n) * testFraction).rounded())) : 0
  let test = min(t, n - 1)
  return (Array(order[test...]), Array(order[..<test]))
}

func jsonNumber(_ v: Double) -> String { v.isFinite ? "\(v)" : "null" }

/// This process's CPU time (user + system, all threads), for timings on a loaded machine.
func processCPUSeconds() -> Double {
  var u = rusage()
  #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &u)
  #else
    getrusage(RUSAGE_SELF, &u)
  #endif
  return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec)
    + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

struct GPFitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fit",
    abstract: "Fit a GP to features and targets; report held-out RMSE and log-likelihood.",
    discussion: """
      FEATURES: one row of numbers per line (spaces or commas). TARGETS: one number per line, \
      as many as rows. A seeded random --test-fraction is held out and scored (noise \
      included in the log-likelihood); the GP is then saved to --output as JSON for \
      `gvae gp predict`. Prints one JSON line per sparse-GP epoch and a summary line.
      """)

  @Option(help: "Features file (\"-\": stdin).") var features: String
  @Option(help: "Targets file, one number per line.") var targets: String
  @Option(help: "Where to write the fitted GP (JSON).") var output: String
  @OptionGroup var surrogate: SurrogateOptions
  @Option(name: .customLong("test-fraction"), help: "Held-out fraction.") var testFraction = 0.1
  @Option(help: "Random seed (split, inducing points, minibatches).") var seed: UInt64 = 0

  func validate() throws {
    guard testFraction >= 0 && testFraction < 1 else {
      throw ValidationError("--test-fraction must be in [0, 1)")
    }
  }

  func run() throws {
    let start = Date()
    let rows = try readFeatureRows(features, what: "features")
    let y = try readFeatureRows(targets, what: "targets")
    guard y.allSatisfy({ $0.count == 1 }) else { throw fail("targets: one number per line") }
    guard rows.count == y.count else {
      throw fail("\(rows.count) feature rows but \(y.count) targets")
    }
    guard rows.count >= 2 else { throw fail("need at least 2 rows, got \(rows.count)") }
    let x = Matrix(rowVectors: rows)
    let targetsAll = y.map { $0[0] }
    var rng = SeededRandom(seed: seed)
    let (train, test) = splitIndices(rows.count, testFraction: testFraction, rng: &rng)
    let out = OutputBuffer()
    let fitted: (posterior: GPPosterior, rmse: Double, logLikelihood: Double)
    var last = Date()
    var lastCPU = processCPUSeconds()
    do {
      fitted = try fitSurrogate(
        surrogate.kind, inputs: x.selecting(rows: train), targets: train.map { targetsAll[$0] },
        test: (x.selecting(rows: test), test.map { targetsAll[$0] }), rng: &rng
      ) { epoch, ll in
        let now = Date()
        let cpu = processCPUSeconds()
        out.write(
          "{\"epoch\":\(epoch),\"train_log_likelihood\":\(jsonNumber(ll)),"
            + "\"seconds\":\(String(format: "%.3f", now.timeIntervalSince(last))),"
            + "\"cpu_seconds\":\(String(format: "%.3f", cpu - lastCPU))}\n")
        last = now
        lastCPU = cpu
        out.flush()
      }
    } catch {
      throw fail(error.description)
    }
    let data = try JSONEncoder().encode(fitted.posterior)
    guard FileManager.default.createFile(atPath: output, contents: data) else {
      throw fail("cannot write '\(output)'")
    }
    out.write(
      "{\"train\":\(train.count),\"test\":\(test.count),\"rmse\":\(jsonNumber(fitted.rmse)),"
        + "\"test_log_likelihood\":\(jsonNumber(fitted.logLikelihood)),"
        + "\"noise_variance\":\(fitted.posterior.noiseVariance),"
        + "\"seconds\":\(String(format: "%.2f", Date().timeIntervalSince(start)))}\n")
    out.flush()
  }
}

struct GPPredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Predict with a GP saved by `gvae gp fit`: one JSON line per feature row.",
    discussion: """
      Prints {"mean", "variance" (of the latent function), "predictive_variance" (plus \
      noise)} per row.
      """)

  @Option(help: "The GP file from `gvae gp fit`.") var gp: String
  @Option(help: "Features file (\"-\": stdin).") var features: String = "-"

  func run() throws {
    let p = try loadPosterior(gp)
    let rows = try readFeatureRows(features, what: "features")
    if let bad = rows.firstIndex(where: { $0.count != p.dimension }) {
      throw fail(
        "features row \(bad + 1) has \(rows[bad].count) values; the GP takes \(p.dimension)")
    }
    let out = OutputBuffer()
    var start = 0
    while start < rows.count {
      let end = min(rows.count, start + 1024)
      let (mu, v) = p.predict(Matrix(rowVectors: Array(rows[start..<end])))
      for (m, s) in zip(mu, v) {
        out.write(
          "{\"mean\":\(jsonNumber(m)),\"variance\":\(jsonNumber(s)),"
            + "\"predictive_variance\":\(jsonNumber(s + p.noiseVariance))}\n")
      }
      start = end
    }
    out.flush()
  }
}

/// A GP saved by `gvae gp fit`, checked for consistent sizes.
func loadPosterior(_ path: String) throws -> GPPosterior {
  guard let data = FileManager.default.contents(atPath: path) else {
    throw fail("cannot read GP file '\(path)'")
  }
  let p: GPPosterior
  do {
    p = try JSONDecoder().decode(GPPosterior.self, from: data)
  } catch {
    throw fail("'\(path)' is not a GP file from `gvae gp fit` (\(error.localizedDescription))")
  }
  guard p.centers.columns == p.dimension, p.weights.count == p.centers.rows,
    p.precision.rows == p.centers.rows, p.precision.columns == p.centers.rows
  else { throw fail("'\(path)': inconsistent GP sizes") }
  return p
}

struct GPProposeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "propose",
    abstract: "Choose a batch of points to evaluate next under a GP saved by `gvae gp fit`.",
    discussion: """
      The acquisition step of `gvae optimize` on its own: --batch points, each maximising \
      log expected improvement below --best (minimisation; negate the targets to maximise) \
      under the GP conditioned on the earlier points of the batch at their predicted means \
      (kriging believer), searched over the bounding box of the --box rows by --candidates \
      uniform points and L-BFGS from the best --restarts of them. Prints one JSON line per \
      point ({"index","mean","variance","z"}: the GP's prediction before the batch), then \
      {"event":"batch","seconds","cpu_seconds"} (the search alone, without reading the files).
      """)

  @Option(help: "The GP file from `gvae gp fit`.") var gp: String
  @Option(help: "Features file whose bounding box is searched (e.g. the training features).")
  var box: String
  @Option(help: "Incumbent to improve on (default: the minimum of --targets).") var best: Double?
  @Option(help: "Targets file; its minimum is the incumbent when --best is not given.")
  var targets: String?
  @Option(help: "Points in the batch.") var batch = 50
  @Option(help: "Uniform candidates scored per batch point.") var candidates = 10_000
  @Option(help: "Best candidates refined by L-BFGS.") var restarts = 5
  @Option(help: "Random seed (candidates).") var seed: UInt64 = 0

  func validate() throws {
    guard batch > 0, candidates > 0, restarts >= 0 else {
      throw ValidationError("--batch and --candidates must be positive, --restarts non-negative")
    }
    guard best != nil || targets != nil else { throw ValidationError("give --best or --targets") }
  }

  func run() throws {
    let p = try loadPosterior(gp)
    let rows = try readFeatureRows(box, what: "box features")
    guard !rows.isEmpty, rows[0].count == p.dimension else {
      throw fail("--box rows must have \(p.dimension) values")
    }
    var incumbent = best ?? .infinity
    if best == nil, let targets {
      let y = try readFeatureRows(targets, what: "targets")
      guard let m = y.compactMap(\.first).min() else { throw fail("--targets is empty") }
      incumbent = m
    }
    var options = AcquisitionOptions()
    options.candidates = candidates
    options.restarts = restarts
    var rng = SeededRandom(seed: seed)
    let start = Date()
    let startCPU = processCPUSeconds()
    let points: [[Double]]
    do {
      points = try selectBatch(
        p, count: batch, best: incumbent, box: Box(boundingRowsOf: Matrix(rowVectors: rows)),
        options: options, rng: &rng)
    } catch {
      throw fail(error.description)
    }
    let seconds = Date().timeIntervalSince(start)
    let cpuSeconds = processCPUSeconds() - startCPU
    let (mu, v) = p.predict(Matrix(rowVectors: points))
    let out = OutputBuffer()
    for (k, z) in points.enumerated() {
      out.write(
        "{\"index\":\(k + 1),\"mean\":\(jsonNumber(mu[k])),\"variance\":\(jsonNumber(v[k])),"
          + "\"z\":[" + z.map { "\($0)" }.joined(separator: ",") + "]}\n")
    }
    out.write(
      "{\"event\":\"batch\",\"points\":\(points.count),\"candidates\":\(candidates),"
        + "\"restarts\":\(restarts),\"best\":\(jsonNumber(incumbent)),"
        + "\"seconds\":\(String(format: "%.3f", seconds)),"
        + "\"cpu_seconds\":\(String(format: "%.3f", cpuSeconds))}\n")
    out.flush()
  }
}
