// End-to-end tests of `gvae optimize` and `gvae gp` on the tiny expression model the model
// tests train (no /work/shared, no Python, no RDKit).
import Foundation
import Testing

@Suite struct OptimizeToolTests {
  func setup() throws -> (model: String, data: String) {
    let model = try tinyModelPath.get()
    let data = try temporaryFile(
      ["x", "1", "x + 1", "sin(x)", "x * x", "exp(x)", "x / 2", "3 * x", "sin(x + 1)", "x + x + 1", "x + 3"]
        .joined(separator: "\n") + "\n", name: "bo-data-\(UUID().uuidString).txt")
    return (model, data.path)
  }

  func small(_ model: String, _ data: String) -> [String] {
    [
      "optimize", "--model", model, "--data", data, "--iterations", "2", "--batch", "3", "--decodings", "3",
      "--inducing", "5", "--epochs", "2", "--gp-batch", "10", "--candidates", "50", "--restarts", "1",
      "--test-fraction", "0.2", "--seed", "1",
    ]
  }

  func lines(_ s: String) throws -> [[String: Any]] {
    try s.split(separator: "\n").map {
      try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not JSON: \($0)")
    }
  }

  @Test func expressionRunPrintsEveryProposalAndTheBestAndRepeatsForASeed() throws {
    let (model, data) = try setup()
    let plot = FileManager.default.temporaryDirectory.appendingPathComponent("bo-\(UUID().uuidString).svg")
    let r = try gvae(small(model, data) + ["--objective", "expression", "--plot", plot.path])
    #expect(r.status == 0, "\(r.stderr)")
    let out = try lines(r.stdout)
    let proposals = out.filter { $0["iteration"] != nil && $0["event"] == nil }
    #expect(proposals.count == 6)
    for p in proposals {
      #expect(p["string"] is String)
      #expect((p["z"] as? [Double])?.count == 8)
      if p["valid"] as? Bool == true { #expect(p["score"] is Double) }
    }
    #expect(out.filter { $0["event"] as? String == "gp" }.count == 2)
    let best = try #require(out.last)
    #expect(best["event"] as? String == "best")
    // The best is the lowest score seen (the expression objective is minimised).
    let scores = proposals.compactMap { $0["score"] as? Double }
    let top = try #require((best["best"] as? [[String: Any]])?.first?["score"] as? Double)
    #expect(scores.allSatisfy { top <= $0 })
    #expect(try String(contentsOf: plot, encoding: .utf8).hasPrefix("<svg"))
    // Reproducible from the seed, except the timings.
    let again = try gvae(small(model, data) + ["--objective", "expression"])
    func strip(_ s: String) -> [String] {
      s.split(separator: "\n").map { String($0).replacing(/"seconds":[0-9.]+/, with: "") }
    }
    #expect(strip(again.stdout) == strip(r.stdout))
  }

  /// A user's scorer: string lengths, maximised.
  @Test func commandObjectiveScoresOverAPipe() throws {
    let (model, data) = try setup()
    let r = try gvae(
      small(model, data) + ["--objective", "while IFS= read -r l; do echo ${#l}; done", "--maximize"])
    #expect(r.status == 0, "\(r.stderr)")
    let proposals = try lines(r.stdout).filter { $0["iteration"] != nil && $0["event"] == nil }
    #expect(proposals.count == 6)
    for p in proposals {
      let s = try #require(p["string"] as? String)
      #expect(p["score"] as? Double == Double(s.count))
    }
  }

  /// A scorer that dies mid-run: a clear error and a non-zero exit, and every proposal scored
  /// before it stays printed.
  @Test func crashedScorerKeepsCompletedEvaluations() throws {
    let (model, data) = try setup()
    // 11 data lines, then the decodings of the first proposals (each proposal's distinct
    // decodings are scored); it dies on its 15th line.
    let scorer = "n=0; while IFS= read -r l; do n=$((n+1)); [ $n -gt 14 ] && exit 5; echo ${#l}; done"
    let r = try gvae(small(model, data) + ["--objective", scorer])
    #expect(r.status != 0)
    #expect(r.stderr.contains("closed its output"), "\(r.stderr)")
    #expect(r.stderr.contains("exit status 5"), "\(r.stderr)")
    let proposals = try lines(r.stdout).filter { $0["iteration"] != nil && $0["event"] == nil }
    #expect(proposals.count >= 1 && proposals.count < 6)
    for p in proposals {
      let s = try #require(p["string"] as? String)
      #expect(p["score"] as? Double == Double(s.count))
    }
  }

  @Test func nonNumericScoreIsAClearError() throws {
    let (model, data) = try setup()
    let r = try gvae(small(model, data) + ["--objective", "while read l; do echo banana; done"])
    #expect(r.status != 0)
    #expect(r.stderr.contains("answered 'banana'"), "\(r.stderr)")
  }

  /// `gvae gp fit` then `predict` on a features file: a smooth function of two inputs.
  @Test func gpFitAndPredict() throws {
    var features = ""
    var targets = ""
    var rng = UInt64(12345)
    func uniform() -> Double {
      rng = rng &* 6364136223846793005 &+ 1442695040888963407
      return Double(rng >> 11) / Double(1 << 53) * 4 - 2
    }
    for _ in 0..<200 {
      let (a, b) = (uniform(), uniform())
      features += "\(a) \(b)\n"
      targets += "\(sin(a) + 0.5 * b)\n"
    }
    let f = try temporaryFile(features, name: "gp-x-\(UUID().uuidString).txt")
    let y = try temporaryFile(targets, name: "gp-y-\(UUID().uuidString).txt")
    let gp = f.deletingPathExtension().path + ".gp.json"
    let fit = try gvae(["gp", "fit", "--features", f.path, "--targets", y.path, "--output", gp, "--surrogate", "exact"])
    #expect(fit.status == 0, "\(fit.stderr)")
    let q = try temporaryFile("0.5 0.5\n-1 1\n", name: "gp-q-\(UUID().uuidString).txt")
    let pred = try gvae(["gp", "predict", "--gp", gp, "--features", q.path])
    #expect(pred.status == 0, "\(pred.stderr)")
    let rows = try lines(pred.stdout)
    #expect(rows.count == 2)
    let means = rows.compactMap { $0["mean"] as? Double }
    #expect(means.count == 2)
    #expect(abs(means[0] - (sin(0.5) + 0.25)) < 0.05, "\(rows)")
    #expect(abs(means[1] - (sin(-1) + 0.5)) < 0.05, "\(rows)")
    #expect(rows.allSatisfy { ($0["variance"] as? Double ?? -1) >= 0 })
    // Three points below the data's best, inside the data's box; the minimum of
    // sin(a) + b/2 on [-2, 2]² is -2 at (-π/2, -2).
    let propose = try gvae([
      "gp", "propose", "--gp", gp, "--box", f.path, "--targets", y.path, "--batch", "3",
      "--candidates", "500", "--seed", "1",
    ])
    #expect(propose.status == 0, "\(propose.stderr)")
    let picked = try lines(propose.stdout)
    #expect(picked.count == 4)
    #expect(picked.last?["event"] as? String == "batch")
    let points = picked.compactMap { $0["z"] as? [Double] }
    #expect(points.count == 3)
    #expect(points.allSatisfy { $0.count == 2 && $0.allSatisfy { abs($0) <= 2 } }, "\(points)")
    #expect((picked.first?["mean"] as? Double ?? 0) < -1.5, "\(picked)")
  }
}
