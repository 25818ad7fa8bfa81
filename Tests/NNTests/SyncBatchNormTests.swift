// Synchronised batch norm: two replicas, each with half the batch and a sum over both,
// compute what one replica computes on the whole batch (two threads stand in for ranks).
import Engine
import Foundation
import NN
import Testing

/// An all-reduce between `parties` threads: each call blocks until every party has given its
/// vector, then all get the sum (in party order, so the rounding is the same for all).
final class ThreadAllReduce: @unchecked Sendable {
  let parties: Int
  let lock = NSCondition()
  var given: [Int: [Double]] = [:]
  var result: [Double] = []
  var collected = 0
  var generation = 0

  init(parties: Int) { self.parties = parties }

  func sum(_ v: inout [Double], party: Int) {
    lock.lock()
    defer { lock.unlock() }
    let g = generation
    given[party] = v
    if given.count == parties {
      result = (0..<parties).map { given[$0]! }.reduce([Double](repeating: 0, count: v.count)) { zip($0, $1).map(+) }
      given = [:]
      generation += 1
      lock.broadcast()
    } else {
      while generation == g { lock.wait() }
    }
    v = result
  }
}

typealias NormRun = (y: [Float], dx: [Float], dScale: [Float], dOffset: [Float], mean: [Float], variance: [Float])

/// A batch `x`, the loss weights `w` (loss Σ w·y) and the feature axis.
struct NormCase: @unchecked Sendable {
  let shape: [Int]
  let axis: Int
  let x: Tensor
  let w: Tensor
  var C: Int { shape[axis == 1 ? 1 : shape.count - 1] }

  /// Rows `rows` of the batch through a fresh layer (scale 0.5, 1.5, …; offset 0, 0.1, …).
  func run(_ rows: Range<Int>, across: SumAcrossReplicas?) -> NormRun {
    let per = x.count / shape[0]
    var s = shape
    s[0] = rows.count
    let xs = Tensor(shape: s, storage: Array(x.storage[(rows.lowerBound * per)..<(rows.upperBound * per)]))
    let ws = Tensor(shape: s, storage: Array(w.storage[(rows.lowerBound * per)..<(rows.upperBound * per)]))
    let bn = BatchNorm(featureCount: C, axis: axis, name: "bn")
    bn.scale.value = Tensor(shape: [C], storage: (0..<C).map { 0.5 + Float($0) })
    bn.offset.value = Tensor(shape: [C], storage: (0..<C).map { Float($0) * 0.1 })
    let tape = Tape()
    let xv = tape.variable(xs)
    let y = bn(xv, tape: tape, training: true, sumAcross: across)
    tape.backward(sum(y * tape.constant(ws)))
    return (
      y.value.storage, tape.gradient(of: xv)!.storage, bn.scale.gradient.storage, bn.offset.gradient.storage,
      bn.runningMean.value.storage, bn.runningVariance.value.storage
    )
  }
}

final class Results: @unchecked Sendable { var runs: [NormRun?] = [nil, nil] }

@Suite struct SyncBatchNormTests {
  /// Forward output, input gradient, summed scale/offset gradients and running statistics
  /// of two shards (2 and 4 rows) under a two-replica sum equal the whole batch's.
  @Test(arguments: [-1, 1]) func twoReplicasComputeTheWholeBatch(axis: Int) {
    let shape = axis == 1 ? [6, 3, 4] : [6, 3]
    var rng = SeededRandom(seed: 7)
    let c = NormCase(
      shape: shape, axis: axis, x: Tensor(randomNormal: shape, rng: &rng), w: Tensor(randomNormal: shape, rng: &rng))
    let whole = c.run(0..<6, across: nil)
    let reduce = ThreadAllReduce(parties: 2)
    let results = Results()
    let group = DispatchGroup()
    for party in 0..<2 {
      group.enter()
      Thread {
        results.runs[party] = c.run(party == 0 ? 0..<2 : 2..<6, across: { reduce.sum(&$0, party: party) })
        group.leave()
      }.start()
    }
    group.wait()
    let (a, b) = (results.runs[0]!, results.runs[1]!)
    func close(_ u: [Float], _ v: [Float], _ what: String) {
      #expect(u.count == v.count)
      for (p, q) in zip(u, v) { #expect(abs(p - q) <= 1e-4 * max(1, abs(q)), "\(what): \(u) vs \(v)") }
    }
    close(a.y + b.y, whole.y, "output")
    close(a.dx + b.dx, whole.dx, "input gradient")
    close(zip(a.dScale, b.dScale).map(+), whole.dScale, "scale gradient")
    close(zip(a.dOffset, b.dOffset).map(+), whole.dOffset, "offset gradient")
    close(a.mean, whole.mean, "running mean")
    close(b.variance, whole.variance, "running variance")
    // Without the sum a shard normalises by its own statistics: another output.
    let alone = c.run(0..<2, across: nil)
    #expect(zip(alone.y, a.y).contains { abs($0 - $1) > 1e-2 })
  }
}
