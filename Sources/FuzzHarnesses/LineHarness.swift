// One-line readers: latent vectors (`decode`), production indices (`derive`), SMILES
// chemistry (`check`).
import CFG
import Chemistry
import Foundation
import GrammarVAE

enum LineHarness {
  static let zinc: Grammar = {
    do { return try Grammar.named("zinc") } catch { fatalError("zinc does not load: \(error)") }
  }()

  static func fail(_ h: String, _ m: String) -> HarnessFailure { HarnessFailure(harness: h, message: m) }

  static func vector(_ data: Data) throws(HarnessFailure) {
    let line = String(decoding: data, as: UTF8.self)
    for size in [1, 3, 56] {
      guard let v = try? parseLatentVector(line, size: size) else { continue }
      guard v.count == size, v.allSatisfy({ $0.isFinite }) else {
        throw fail("vector-line", "accepted \(v) for size \(size)")
      }
      // Printing and reading back gives the same numbers (what decode after encode does).
      let again = try? parseLatentVector(v.map { "\($0)" }.joined(separator: " "), size: size)
      guard again == v else { throw fail("vector-line", "\(v) does not read back") }
    }
  }

  static func indices(_ data: Data) throws(HarnessFailure) {
    let line = String(decoding: data, as: UTF8.self)
    guard let seq = try? parseProductionIndices(line) else { return }
    guard !seq.isEmpty else { throw fail("index-line", "accepted an empty sequence") }
    guard let s = try? zinc.derive(seq) else { return }
    // A derivation that finishes gives a string the grammar parses (padding may trail).
    guard (try? zinc.parse(s)) != nil else {
      throw fail("index-line", "derive gave '\(s)', which does not parse")
    }
  }

  static func smiles(_ data: Data) throws(HarnessFailure) {
    let s = String(decoding: data, as: UTF8.self)
    // The checker is a pure function; a valid molecule's counts are consistent.
    let first = SMILES.check(s)
    guard first == SMILES.check(s) else { throw fail("smiles-check", "two checks differ") }
    if let m = first.summary {
      guard m.atomCount >= m.heavyAtomCount, m.aromaticAtomCount <= m.atomCount,
        m.fragmentCount >= 1, m.heavyAtomCounts.values.allSatisfy({ $0 > 0 })
      else { throw fail("smiles-check", "inconsistent summary \(m)") }
    }
    if let e = first.error, !(1...(s.count + 1)).contains(e.column) {
      throw fail("smiles-check", "error column \(e.column) outside the input: \(e)")
    }
  }
}
