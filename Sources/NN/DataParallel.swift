// Data-parallel training: every rank computes gradients on its shard of the global batch;
// summing them over ranks gives the global batch's gradient, so every rank takes the same
// optimiser step and the parameters stay identical.
import Engine

/// Sums parameter gradients over a cluster's ranks in buckets, as PyTorch's DDP and
/// Horovod's tensor fusion do: parameters in reverse order (the last layers' gradients are
/// complete first in a backward pass), packed into buckets of about `bucketBytes`; each
/// bucket's non-blocking reduction starts as soon as it is packed, so packing the next one
/// overlaps with sending this one.
public final class GradientReducer {
  public let cluster: Cluster
  let buckets: [[Parameter]]
  let storage: [UnsafeMutablePointer<Float>]
  let counts: [Int]

  /// Floats summed per step (every parameter's gradient once).
  public var floatsPerStep: Int { counts.reduce(0, +) }
  public var bucketCount: Int { buckets.count }

  public init(parameters: [Parameter], cluster: Cluster = .world, bucketBytes: Int = 4 << 20) {
    self.cluster = cluster
    var buckets: [[Parameter]] = [[]]
    var size = 0
    for p in parameters.reversed() {
      let n = p.gradient.storage.count
      if size > 0 && 4 * (size + n) > bucketBytes {
        buckets.append([])
        size = 0
      }
      buckets[buckets.count - 1].append(p)
      size += n
    }
    self.buckets = buckets.filter { !$0.isEmpty }
    counts = self.buckets.map { $0.reduce(0) { $0 + $1.gradient.storage.count } }
    storage = counts.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0, 1)) }
  }

  deinit { for s in storage { s.deallocate() } }

  var ready: [Int] = []
  var pending: [Cluster.PendingSum?] = []
  /// Buckets start in index order on every rank (MPI matches collectives by order).
  var nextToStart = 0
  var bucketOf: [ObjectIdentifier: Int] = [:]

  /// For the last backward pass of a step (`Tape.onParameterGradient`): counts parameters
  /// whose gradient is complete and starts each bucket's reduction as soon as all of its
  /// parameters are. `finish()` then waits, starting any bucket not yet started.
  public func gradientReady(_ p: Parameter) {
    guard cluster.size > 1, let b = bucketOf[ObjectIdentifier(p)] else { return }
    ready[b] += 1
    while nextToStart < buckets.count && ready[nextToStart] == buckets[nextToStart].count {
      start(nextToStart)
      nextToStart += 1
    }
  }

  /// Starts overlapping reductions: call before the last backward pass of a step.
  public func begin() {
    guard cluster.size > 1 else { return }
    if bucketOf.isEmpty {
      for (b, bucket) in buckets.enumerated() { for p in bucket { bucketOf[ObjectIdentifier(p)] = b } }
    }
    ready = [Int](repeating: 0, count: buckets.count)
    pending = [Cluster.PendingSum?](repeating: nil, count: buckets.count)
    nextToStart = 0
  }

  func start(_ b: Int) {
    guard pending[b] == nil else { return }
    var at = 0
    for p in buckets[b] {
      p.gradient.storage.withUnsafeBufferPointer { g in
        (storage[b] + at).update(from: g.baseAddress!, count: g.count)
        at += g.count
      }
    }
    pending[b] = cluster.startAllReduceSum(storage[b], count: counts[b])
  }

  /// Waits for every bucket begun since `begin()` (starting the rest) and writes the sums
  /// back into the gradients.
  public func finish() {
    guard cluster.size > 1 else { return }
    while nextToStart < buckets.count {
      start(nextToStart)
      nextToStart += 1
    }
    for (b, bucket) in buckets.enumerated() {
      pending[b]!.wait()
      var at = 0
      for p in bucket {
        p.gradient.storage.withUnsafeMutableBufferPointer { g in
          g.baseAddress!.update(from: storage[b] + at, count: g.count)
          at += g.count
        }
      }
    }
    pending = []
  }

  /// Replaces every gradient by its sum over ranks (nothing to do on one process).
  public func allReduce() {
    guard cluster.size > 1 else { return }
    var pending: [Cluster.PendingSum] = []
    for (b, bucket) in buckets.enumerated() {
      var at = 0
      for p in bucket {
        p.gradient.storage.withUnsafeBufferPointer { g in
          (storage[b] + at).update(from: g.baseAddress!, count: g.count)
          at += g.count
        }
      }
      pending.append(cluster.startAllReduceSum(storage[b], count: counts[b]))
    }
    for (b, bucket) in buckets.enumerated() {
      pending[b].wait()
      var at = 0
      for p in bucket {
        p.gradient.storage.withUnsafeMutableBufferPointer { g in
          g.baseAddress!.update(from: storage[b] + at, count: g.count)
          at += g.count
        }
      }
    }
  }

  /// Rank 0's values of these parameters (weights, running statistics) on every rank.
  public static func broadcast(_ parameters: [Parameter], cluster: Cluster = .world) {
    guard cluster.size > 1 else { return }
    for p in parameters {
      p.value.storage.withUnsafeMutableBufferPointer { v in
        cluster.broadcast(v.baseAddress!, count: v.count)
      }
    }
  }
}
