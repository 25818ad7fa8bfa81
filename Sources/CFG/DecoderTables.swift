// Tables for masks and the stack decoder (Kusner et al. 2017, §2 of REFERENCE.md).

/// Immutable per-grammar tables shared by `DerivationStack` and `StackBatch`.
final class DecoderTables: Sendable {
  let productionCount: Int
  let rowCount: Int
  let startRow: Int32
  let paddingProduction: Int
  let paddingRow: Int32
  let lhs: [Int32]  // [production]
  let usable: [Bool]  // [production]
  /// Right-hand-side non-terminals of production p, reversed (push order):
  /// `pushFlat[pushStart[p] ..< pushStart[p + 1]]`.
  let pushStart: [Int32]
  let pushFlat: [Int32]
  let maxPush: Int
  let names: [String]  // [row]

  init(
    rowCount: Int, startRow: Int, paddingProduction: Int, lhs: [Int32], usable: [Bool],
    rhs: [[Int32]], names: [String]
  ) {
    productionCount = lhs.count
    self.rowCount = rowCount
    self.startRow = Int32(startRow)
    self.paddingProduction = paddingProduction
    paddingRow = paddingProduction >= 0 ? lhs[paddingProduction] : -1
    self.lhs = lhs
    self.usable = usable
    var start: [Int32] = []
    var flat: [Int32] = []
    var maxPush = 0
    for r in rhs {
      start.append(Int32(flat.count))
      let nts = r.filter { $0 >= 0 }
      maxPush = max(maxPush, nts.count)
      flat.append(contentsOf: nts.reversed())
    }
    start.append(Int32(flat.count))
    pushStart = start
    pushFlat = flat
    self.maxPush = maxPush
    self.names = names
  }

  /// A stack depth that no derivation of `maxLength` steps can exceed.
  func capacity(forMaxLength maxLength: Int) -> Int {
    1 + max(1, maxLength) * max(0, maxPush - 1) + maxPush
  }
}
