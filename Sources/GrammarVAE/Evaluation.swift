// Metrics by the paper's protocols (REFERENCE.md §5): reconstruction accuracy and prior
// validity, uniqueness and novelty.
import CFG
import Engine
import Foundation

/// Results of `evaluate`.
public struct EvaluationReport: Codable, Sendable {
  public var testCount: Int = 0
  public var encodings: Int = 0
  public var decodings: Int = 0
  /// Fraction of (string, encoding, decoding) triples that reproduce the string exactly.
  public var reconstruction: Double = 0
  /// Same with the first 5 decodings of each encoding (SD-VAE's 10 × 5 script).
  public var reconstructionSDVAE: Double = 0
  /// Whether `reconstruction` and `reconstructionSDVAE` were measured (sampled decodings).
  public var reconstructionSampled: Bool = false
  /// The mean over strings and encodings of the probability that one decoding writes the
  /// string (`Evaluation.expectedReconstruction`); nil when not asked for.
  public var reconstructionExpected: Double? = nil
  /// Greedy decoding of the posterior mean.
  public var reconstructionMeanGreedy: Double = 0
  public var priorSamples: Int = 0
  public var priorDecodings: Int = 0
  /// Completed and parseable by the grammar.
  public var priorGrammarValid: Double = 0
  /// Finished derivations (grammar models) among prior decodings.
  public var priorComplete: Double = 0
  /// RDKit-valid (molecules), nil when RDKit is unavailable or not asked for.
  public var priorRDKitValid: Double? = nil
  public var rdkit: String = "not requested"
  /// Distinct valid strings / valid strings.
  public var uniqueness: Double = 0
  /// Valid strings not in the training set / valid strings.
  public var novelty: Double = 0
  /// Whether decoding masked productions that could not finish within the length limit.
  public var lengthBudget: Bool = false
  /// What decoding guaranteed: none, grammar or chemistry.
  public var constraints: String = "none"
  /// Prior decodings that the Chemistry module's SMILES checker accepts (SMILES grammars).
  public var priorChemistryValid: Double? = nil
  public var seconds: Double = 0

  public init() {}
}

public enum Evaluation {
  /// Reconstruction accuracy: each string encoded `encodings` times stochastically, each
  /// encoding decoded `decodings` times (Gumbel-max, temperature 1); exact string match.
  /// Chunks of strings draw their noise from their own generator (seed and chunk), so the
  /// ranks of an MPI job share them out and sum the counts: the result is one process's.
  public static func reconstruction(
    model: VAEModel, strings: [String], encodings: Int, decodings: Int, seed: UInt64,
    lengthBudget: Bool = false, constraint: ConstraintSearch? = nil,
    progress: (Int) -> Void = { _ in }
  ) throws -> (accuracy: Double, sdvae: Double, meanGreedy: Double) {
    let cluster = Cluster.world
    var hits = 0
    var total = 0
    var hits5 = 0
    var total5 = 0
    var greedyHits = 0
    try forEachChunk(
      model: model, strings: strings, chunk: max(1, 256 / max(encodings, 1)), seed: seed,
      lengthBudget: lengthBudget, constraint: constraint, progress: progress
    ) { _, part, canon, greedy, rng in
      greedyHits += greedy
      var z: [[Float]] = []
      for _ in 0..<encodings { z += try model.encode(part, stochastic: true, rng: &rng) }
      // z is [encoding][string]; outputs [z][decoding].
      let out = model.decode(
        latents: z, decodings: decodings, strategy: .sample(temperature: 1), rng: &rng,
        lengthBudget: lengthBudget, constraint: constraint, chunk: 25_600)
      for (zi, _) in z.enumerated() {
        let target = canon[zi % part.count]
        for d in 0..<decodings {
          let ok = out[zi * decodings + d].string == target
          if ok { hits += 1 }
          total += 1
          if d < 5 {
            if ok { hits5 += 1 }
            total5 += 1
          }
        }
      }
    }
    var counts = [Double(hits), Double(total), Double(hits5), Double(total5), Double(greedyHits)]
    cluster.allReduceSum(&counts)
    (hits, total, hits5, total5, greedyHits) = (
      Int(counts[0]), Int(counts[1]), Int(counts[2]), Int(counts[3]), Int(counts[4])
    )
    return (
      Double(hits) / Double(max(total, 1)), Double(hits5) / Double(max(total5, 1)),
      Double(greedyHits) / Double(max(strings.count, 1))
    )
  }

  /// The reconstruction protocol's expectation over decodings, without sampling them: each
  /// string encoded `encodings` times stochastically, and each encoding scored by the
  /// probability that one decoding writes the string (`VAEModel.logLikelihoods`); the mean of
  /// those probabilities is what `reconstruction` estimates with its `decodings` draws per
  /// encoding (exactly for an unambiguous grammar; otherwise a lower bound). Greedy
  /// reconstruction from the mean as there (the only part the decoding constraints touch).
  /// Chunks draw their noise as `reconstruction` does, so MPI ranks share the strings out.
  public static func expectedReconstruction(
    model: VAEModel, strings: [String], encodings: Int, seed: UInt64,
    lengthBudget: Bool = false, constraint: ConstraintSearch? = nil,
    progress: (Int) -> Void = { _ in }
  ) throws -> (expected: Double, meanGreedy: Double) {
    let cluster = Cluster.world
    let chunk = max(1, 640 / max(encodings, 1))
    // Per chunk: its probability sum, encodings scored, greedy hits. Each rank fills its own
    // chunks (adding the others' zeros is exact), and every rank sums them in chunk order,
    // so an MPI job reports exactly one process's figure.
    let chunks = (strings.count + chunk - 1) / chunk
    var sums = [Double](repeating: 0, count: 3 * chunks)
    try forEachChunk(
      model: model, strings: strings, chunk: chunk, seed: seed, lengthBudget: lengthBudget,
      constraint: constraint, progress: progress
    ) { index, part, _, greedy, rng in
      sums[3 * index + 2] += Double(greedy)
      var z: [[Float]] = []
      for _ in 0..<encodings { z += try model.encode(part, stochastic: true, rng: &rng) }
      let encoded = try model.sequences(part)  // once per string, not per encoding
      let targets = (0..<z.count).map { encoded[$0 % part.count] }
      for lp in model.logLikelihoods(encoded: targets, latents: z) {
        sums[3 * index] += exp(lp)
        sums[3 * index + 1] += 1
      }
    }
    cluster.allReduceSum(&sums)
    var total = [0.0, 0.0, 0.0]
    for i in 0..<chunks { for j in 0..<3 { total[j] += sums[3 * i + j] } }
    return (total[0] / max(total[1], 1), total[2] / Double(max(strings.count, 1)))
  }

  /// Runs `body` on this rank's chunks of `strings` (chunk i goes to rank i mod size) with
  /// the chunk's index, strings, canonical forms, greedy hits of their posterior means and
  /// its generator (seeded by `seed` and the index, past the greedy decode).
  static func forEachChunk(
    model: VAEModel, strings: [String], chunk: Int, seed: UInt64, lengthBudget: Bool,
    constraint: ConstraintSearch?, progress: (Int) -> Void,
    _ body: (Int, [String], [String], Int, inout SeededRandom) throws -> Void
  ) throws {
    let cluster = Cluster.world
    var k = 0
    var index = -1
    while k < strings.count {
      index += 1
      if index % cluster.size == cluster.rank {
        var rng = SeededRandom(seed: seed ^ (UInt64(index + 1) &* 0xD1B5_4A32_D192_ED03))
        let part = Array(strings[k..<min(strings.count, k + chunk)])
        let canon = part.map { model.codec.canonical($0) }
        let means = try model.encode(part, stochastic: false, rng: &rng)
        let greedy = model.decode(
          latents: means, strategy: .greedy, rng: &rng, lengthBudget: lengthBudget,
          constraint: constraint)
        try body(index, part, canon, zip(greedy, canon).filter { $0.0.string == $0.1 }.count, &rng)
        progress(min(k + chunk, strings.count))
      }
      k += chunk
    }
  }

  /// Decodings of prior draws z ~ N(0, I): `samples` draws × `decodings` each.
  public static func priorDecodings(
    model: VAEModel, samples: Int, decodings: Int, seed: UInt64, lengthBudget: Bool = false,
    constraint: ConstraintSearch? = nil
  ) -> [DecodedString] {
    var rng = SeededRandom(seed: seed)
    let Z = model.configuration.latentSize
    let z = (0..<samples).map { _ in
      (0..<Z).map { _ in rng.nextNormal() }
    }
    return model.decodeAcrossRanks(
      latents: z, decodings: decodings, strategy: .sample(temperature: 1), rng: &rng,
      lengthBudget: lengthBudget, constraint: constraint, chunk: 4096)
  }

  /// Runs `tools/rdkit_valid.py` (SMILES on stdin, 1/0 per line); nil when Python or RDKit
  /// is unavailable.
  public static func rdkitValid(_ smiles: [String], script: String) -> [Bool]? {
    guard FileManager.default.fileExists(atPath: script) else { return nil }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", script]
    let input = Pipe()
    let output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    p.standardError = FileHandle.nullDevice
    // A Python without RDKit exits at once: the next write must fail, not kill us by SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    do { try p.run() } catch { return nil }
    let data = Data(smiles.map { $0.replacingOccurrences(of: "\n", with: "") + "\n" }.joined().utf8)
    DispatchQueue.global().async {
      try? input.fileHandleForWriting.write(contentsOf: data)
      try? input.fileHandleForWriting.close()
    }
    let out = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { return nil }
    let lines = String(decoding: out, as: UTF8.self).split(separator: "\n")
    guard lines.count == smiles.count else { return nil }
    return lines.map { $0 == "1" }
  }
}
