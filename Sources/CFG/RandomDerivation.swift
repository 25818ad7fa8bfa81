// Random derivations: grammar-valid strings that fit a length limit, for samples and tests.
// Generic over the caller's generator (gvae passes Engine's SeededRandom).

/// Errors from random generation.
public enum GenerationError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The shortest derivation of the start symbol is longer than the limit.
  case maxLengthTooSmall(maxLength: Int, shortest: Int)
  /// Fewer distinct strings than requested were found.
  case tooFewDistinct(found: Int, requested: Int, attempts: Int)

  public var description: String {
    switch self {
    case .maxLengthTooSmall(let maxLength, let shortest):
      return "the shortest derivation has \(shortest) steps, more than --max-len \(maxLength)"
    case .tooFewDistinct(let found, let requested, let attempts):
      return "found only \(found) distinct strings of \(requested) requested after \(attempts)"
        + " attempts; raise --max-len or lower -n"
    }
  }
}

extension Grammar {
  /// The fewest derivation steps from the start symbol to a terminal string.
  public var shortestDerivation: Int { minSteps[Int(tables.startNT)] }

  /// A random leftmost derivation of at most `maxLength` steps.
  ///
  /// At each step the productions of the current non-terminal that can still finish within the
  /// limit (counting the fewest steps every pending symbol needs) are candidates. With
  /// probability `1 - terminationBias` one is chosen uniformly; otherwise the candidate that
  /// adds the fewest steps is taken, which keeps lengths spread rather than piled at the limit.
  public func randomDerivation<R: RandomNumberGenerator>(
    maxLength: Int, terminationBias: Double = 0.0, using rng: inout R
  ) throws(GenerationError) -> [Int] {
    let startCost = minSteps[Int(tables.startNT)]
    guard startCost <= maxLength else {
      throw .maxLengthTooSmall(maxLength: maxLength, shortest: startCost)
    }
    var stack: [Int32] = [tables.startNT]
    var pendingCost = startCost
    var out: [Int] = []
    var candidates: [Int] = []
    while let top = stack.popLast() {
      if top < 0 { continue }
      let n = Int(top)
      pendingCost -= minSteps[n]
      candidates.removeAll(keepingCapacity: true)
      var cheapest = -1
      var cheapestCost = Int.max
      for p in productionsOf[n] where usable[Int(p)] {
        var cost = 1
        for s in rhsIDs[Int(p)] where s >= 0 { cost = Grammar.addSteps(cost, minSteps[Int(s)]) }
        if out.count + cost + pendingCost <= maxLength {
          candidates.append(Int(p))
          if cost < cheapestCost {
            cheapestCost = cost
            cheapest = Int(p)
          }
        }
      }
      // The cheapest production always fits: the invariant out + pending <= maxLength holds.
      let p: Int
      if terminationBias > 0 && Double.random(in: 0..<1, using: &rng) < terminationBias {
        p = cheapest
      } else {
        p = candidates[Int.random(in: 0..<candidates.count, using: &rng)]
      }
      out.append(p)
      for s in rhsIDs[p] where s >= 0 { pendingCost += minSteps[Int(s)] }
      stack.append(contentsOf: rhsIDs[p].reversed())
    }
    return out
  }

  /// `count` distinct random strings whose derivations have at most `maxLength` steps.
  /// - Throws: `GenerationError` when the limit is below the shortest derivation or too few
  ///   distinct strings turn up.
  public func randomStrings<R: RandomNumberGenerator>(
    count: Int, maxLength: Int, terminationBias: Double = 0.0, using rng: inout R
  ) throws(GenerationError) -> [String] {
    var seen = Set<String>()
    var out: [String] = []
    let limit = 50 * count + 10_000
    var attempts = 0
    while out.count < count {
      guard attempts < limit else {
        throw .tooFewDistinct(found: out.count, requested: count, attempts: attempts)
      }
      attempts += 1
      let d = try randomDerivation(
        maxLength: maxLength, terminationBias: terminationBias, using: &rng)
      guard let s = try? derive(d) else { continue }
      if seen.insert(s).inserted { out.append(s) }
    }
    return out
  }
}
