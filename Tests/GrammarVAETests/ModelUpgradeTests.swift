import Engine
import Foundation
import Testing

@testable import GrammarVAE

/// Format-1 files (the fused network's layout) written by the last release before the change,
/// with that release's `gvae encode` means and `gvae decode --no-length-budget` outputs as
/// golden files (Fixtures/, made by `gvae train --preset tiny` on Fixtures/data.txt).
@Suite struct ModelUpgradeTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

  func lines(_ name: String) throws -> [String] {
    try String(contentsOf: Self.fixtures.appendingPathComponent(name), encoding: .utf8)
      .split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
  }

  func vectors(_ name: String) throws -> [[Float]] {
    try lines(name).map { $0.split(separator: " ").map { Float(String($0))! } }
  }

  @Test(arguments: ["grammar", "character"])
  func upgradedModelGivesTheOldOutputs(kind: String) throws {
    let path = Self.fixtures.appendingPathComponent("tiny-\(kind)-v1.safetensors").path
    // The old layout is refused with a message that says what to do.
    do {
      _ = try VAEModel.load(path: path)
      Issue.record("a format-1 file loaded without conversion")
    } catch {
      #expect(error.description.contains("upgrade-model"), "\(error)")
    }
    let model = try VAEModel.upgrade(path: path)
    var rng = SeededRandom(seed: 0)
    let means = try model.encode(try lines("data.txt"), stochastic: false, rng: &rng)
    let golden = try vectors("tiny-\(kind)-v1.means.txt")
    #expect(means.count == golden.count)
    var worst: Float = 0
    for (a, b) in zip(means, golden) { for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) } }
    #expect(worst < 1e-5, "means differ by \(worst)")
    let decoded = model.decode(
      latents: try vectors("latents.txt"), strategy: .greedy, rng: &rng, lengthBudget: false)
    let expected = try lines("tiny-\(kind)-v1.decoded.txt")
    #expect(decoded.map { $0.string ?? "" } == expected)
    // Saved in the new layout, it loads as it is and gives the same means.
    let converted = temporaryPath("converted.safetensors")
    try model.save(to: converted)
    let again = try VAEModel.load(path: converted)
    #expect(try again.encode(try lines("data.txt"), stochastic: false, rng: &rng) == means)
  }
}
