// Semantic constraints over leftmost derivations. The grammar mask guarantees syntax; a
// constraint (chemistry for SMILES, or a user's own) judges the terminals derived so far, and
// the decoder allows a production only when a complete derivation that the constraint accepts
// can still be reached within the steps left. Each allowed choice is proved by a witness: a
// completion found by a goal-directed search. The witness of the last choice is kept, so its
// next production is always allowed and decoding never reaches a dead end.

/// A constraint's judgement of the terminals derived so far.
public struct ConstraintAdvice: Equatable, Sendable {
  public enum Status: Equatable, Sendable {
    /// No continuation can be accepted.
    case dead
    /// Not acceptable as it stands; a continuation may be.
    case open
    /// Acceptable as a complete string.
    case complete
  }
  public var status: Status
  /// What the constraint would like derived next, best first: sequences of one or two
  /// terminals (indices into `Grammar.terminals`). The search prefers productions that
  /// reach them soonest.
  public var goals: [Goal]

  /// One or two terminals wanted next; `then`: a terminal still wanted after them (the
  /// search then prefers productions that leave room for it), nil when they would finish.
  public struct Goal: Equatable, Sendable {
    public var terminals: [Int]
    public var then: Int?
    public init(_ terminals: [Int], then: Int? = nil) {
      self.terminals = terminals
      self.then = then
    }
  }

  public init(status: Status, goals: [Goal] = []) {
    self.status = status
    self.goals = goals
  }
}

/// A semantic constraint on the strings of a grammar.
public protocol DerivationConstraint: Sendable {
  /// Judges a prefix of terminals (indices into `Grammar.terminals`), in derivation order.
  /// Must never answer `.dead` for a prefix that has an accepted completion; may answer
  /// `.open` for one that has none (the search then backtracks).
  func examine(_ terminals: [Int]) -> ConstraintAdvice
  /// Whether a complete string is accepted. Defaults to `examine(…) == .complete`; a
  /// constraint whose prefix judgements are stricter than its final verdict overrides it, so
  /// that a finished derivation is judged by the final verdict alone.
  func acceptsComplete(_ terminals: [Int]) -> Bool
  /// Whether no continuation of a prefix is accepted by `acceptsComplete`, for certain: a
  /// decoder drops such a prefix at once. Defaults to `examine(…) == .dead`; a constraint
  /// whose `.dead` includes conservative judgements overrides it with the sound part.
  func isCertainlyDead(_ terminals: [Int]) -> Bool
}

extension DerivationConstraint {
  public func acceptsComplete(_ terminals: [Int]) -> Bool { examine(terminals).status == .complete }
  public func isCertainlyDead(_ terminals: [Int]) -> Bool { examine(terminals).status == .dead }
}

/// A grammar with a constraint, and the tables its completion search needs. Build once per
/// grammar and share between derivations.
public final class ConstraintSearch: Sendable {
  public let grammar: Grammar
  public let constraint: any DerivationConstraint
  /// Productions one search may try before it gives up (the choice is then not allowed).
  public let nodeLimit: Int
  let T: Int
  let never = Int32.max
  /// Fewest steps for a non-terminal to derive a string that starts with terminal t:
  /// `[nonterminal][t]`; that is exactly t: `exact`; that starts with t1 t2: `first2`
  /// `[nonterminal][t1 * T + t2]`. (SMILES grammars have no empty productions but padding;
  /// an empty right-hand side counts as deriving nothing.)
  let first1: [[Int32]]
  let exact: [[Int32]]
  let first2: [[Int32]]
  /// Whether a production leaves room for terminal t after its first symbol: some later
  /// right-hand-side non-terminal can derive a string containing t (`chain -> atom chain`
  /// for an atom; not `chain -> atom`). `[production][t]`.
  let roomFor: [[Bool]]
  /// The production of each non-terminal that finishes in the fewest steps (-1: none).
  let cheapest: [Int]

  public init(grammar: Grammar, constraint: any DerivationConstraint, nodeLimit: Int = 20) {
    self.grammar = grammar
    self.constraint = constraint
    self.nodeLimit = nodeLimit
    let T = grammar.terminals.count
    self.T = T
    let P = grammar.productions.count
    let N = grammar.ntCount
    let never = Int32.max
    func plus(_ a: Int32, _ b: Int32) -> Int32 { a == never || b == never ? never : a + b }
    var F1 = [[Int32]](repeating: [Int32](repeating: never, count: T), count: N)
    var E = F1
    var F2 = [[Int32]](repeating: [Int32](repeating: never, count: T * T), count: N)
    var changed = true
    while changed {
      changed = false
      for p in 0..<P where grammar.usable[p] {
        let n = Int(grammar.lhsID[p])
        let rhs = grammar.rhsIDs[p]
        guard let s1 = rhs.first else { continue }
        for t in 0..<T {
          var c1 = never
          var ce = never
          if s1 < 0 {
            if Int(~s1) == t { c1 = 1; if rhs.count == 1 { ce = 1 } }
          } else {
            c1 = plus(F1[Int(s1)][t], 1)
            if rhs.count == 1 { ce = plus(E[Int(s1)][t], 1) }
          }
          if c1 < F1[n][t] { F1[n][t] = c1; changed = true }
          if ce < E[n][t] { E[n][t] = ce; changed = true }
        }
      }
    }
    changed = true
    while changed {
      changed = false
      for p in 0..<P where grammar.usable[p] {
        let n = Int(grammar.lhsID[p])
        for t1 in 0..<T {
          for t2 in 0..<T {
            let c = ConstraintSearch.cost2(grammar.rhsIDs[p], t1, t2, T, F1, E, F2)
            if c < F2[n][t1 * T + t2] { F2[n][t1 * T + t2] = c; changed = true }
          }
        }
      }
    }
    first1 = F1
    exact = E
    first2 = F2
    // contains[n][t]: n derives some string containing t.
    var contains = [[Bool]](repeating: [Bool](repeating: false, count: T), count: N)
    changed = true
    while changed {
      changed = false
      for p in 0..<P where grammar.usable[p] {
        let n = Int(grammar.lhsID[p])
        for s in grammar.rhsIDs[p] {
          if s < 0 {
            if !contains[n][Int(~s)] { contains[n][Int(~s)] = true; changed = true }
          } else {
            for t in 0..<T where contains[Int(s)][t] && !contains[n][t] {
              contains[n][t] = true
              changed = true
            }
          }
        }
      }
    }
    cheapest = (0..<N).map { n in
      guard n < grammar.productionsOf.count else { return -1 }
      var best = -1
      var bestSteps = Int.max
      for q in grammar.productionsOf[n] where grammar.usable[Int(q)] {
        let c = grammar.stepsToFinish(production: Int(q))
        if c < bestSteps { (best, bestSteps) = (Int(q), c) }
      }
      return best
    }
    roomFor = (0..<P).map { p in
      let rhs = grammar.rhsIDs[p].dropFirst()
      return (0..<T).map { t in rhs.contains { $0 >= 0 && contains[Int($0)][t] } }
    }
  }

  /// Steps for a right-hand side to derive a string starting with t1 t2 (counting the
  /// production itself), from the non-terminal tables.
  static func cost2(
    _ rhs: [Int32], _ t1: Int, _ t2: Int, _ T: Int, _ F1: [[Int32]], _ E: [[Int32]], _ F2: [[Int32]]
  ) -> Int32 {
    let never = Int32.max
    func plus(_ a: Int32, _ b: Int32) -> Int32 { a == never || b == never ? never : a + b }
    guard let s1 = rhs.first else { return never }
    // The second terminal from the symbol after the first.
    func then(_ t: Int) -> Int32 {
      guard rhs.count > 1 else { return never }
      let s2 = rhs[1]
      if s2 < 0 { return Int(~s2) == t ? 0 : never }
      return F1[Int(s2)][t]
    }
    if s1 < 0 { return Int(~s1) == t1 ? plus(1, then(t2)) : never }
    let inside = plus(F2[Int(s1)][t1 * T + t2], 1)
    let split = plus(plus(E[Int(s1)][t1], 1), then(t2))
    return min(inside, split)
  }

  /// Steps for production p to reach a goal (one or two terminals) first.
  @inline(__always) func reach(_ p: Int, _ goal: [Int]) -> Int32 {
    let rhs = grammar.rhsIDs[p]
    guard let s1 = rhs.first, !goal.isEmpty else { return never }
    if goal.count == 1 {
      if s1 < 0 { return Int(~s1) == goal[0] ? 1 : never }
      let f = first1[Int(s1)][goal[0]]
      return f == never ? never : f + 1
    }
    return ConstraintSearch.cost2(rhs, goal[0], goal[1], T, first1, exact, first2)
  }

  /// A derivation at its start, with its first witness; nil when no completion within
  /// `maxSteps` is accepted (or the search gave up).
  public func start(maxSteps: Int) -> ConstrainedDerivation? {
    var d = ConstrainedDerivation(
      search: self, stack: [grammar.tables.startNT], terminals: [], steps: 0, maxSteps: maxSteps)
    guard let w = witness(from: d) else { return nil }
    d.witness = w
    return d
  }

  /// Whether a complete production sequence derives a string the constraint accepts.
  public func accepts(_ productions: [Int]) -> Bool {
    let run = replay(productions[...])
    return run.valid && run.stack.isEmpty && constraint.acceptsComplete(run.terminals)
  }

  /// The stack and terminals after applying `productions` from the start symbol, up to the
  /// first that does not apply (`valid` false) or until the derivation is complete (padding
  /// may follow); `marks[k]`: the number of terminals after k productions.
  func replay(_ productions: ArraySlice<Int>) -> (
    stack: [Int32], terminals: [Int], applied: Int, marks: [Int], valid: Bool
  ) {
    var stack: [Int32] = [grammar.tables.startNT]
    var terminals: [Int] = []
    _ = ConstraintSearch.flush(&stack, &terminals)
    var marks = [terminals.count]
    for p in productions {
      guard let top = stack.last else { break }
      guard top >= 0, grammar.usable[p], grammar.lhsID[p] == top else {
        return (stack, terminals, marks.count - 1, marks, false)
      }
      _ = ConstraintSearch.expand(&stack, &terminals, grammar.rhsIDs[p])
      marks.append(terminals.count)
    }
    return (stack, terminals, marks.count - 1, marks, true)
  }

  /// Where a derivation that the constraint rejects can be continued under it: the longest
  /// prefix of `productions` that ends before the first dead prefix and has a witness
  /// (tried at one, two, four, … productions before it; the start last), with that witness
  /// kept. A decoder redoes only the steps after it. Nil when not even the start has one.
  /// `firstDead`: a prefix length the caller knows to be dead and first (no bisection).
  public func resumption(of productions: [Int], maxSteps: Int, firstDead: Int? = nil) -> (kept: Int, derivation: ConstrainedDerivation)? {
    // One replay gives every prefix's terminals (they only grow); a derivation is rebuilt
    // only where a witness is sought.
    let all = replay(productions[...])
    func prefix(_ k: Int) -> [Int] { Array(all.terminals[..<all.marks[k]]) }
    // First bad prefix by bisection: the whole sequence is bad (rejected), and a dead prefix
    // stays dead whatever follows it.
    var lo = 0
    var hi = all.applied
    if let firstDead, firstDead <= hi { (lo, hi) = (firstDead, firstDead) }
    while lo < hi {
      let mid = (lo + hi) / 2
      if constraint.examine(prefix(mid)).status == .dead { hi = mid } else { lo = mid + 1 }
    }
    var back = 1
    var kept = hi - 1
    while kept > 0 {
      let run = replay(productions[..<kept])
      var d = ConstrainedDerivation(
        search: self, stack: run.stack, terminals: run.terminals, steps: kept, maxSteps: maxSteps)
      if let w = witness(from: d) {
        d.witness = w
        return (kept, d)
      }
      kept = hi - 2 * back
      back *= 2
    }
    return start(maxSteps: maxSteps).map { (0, $0) }
  }

  /// A derivation's terminals followed production by production, for a decoder that checks
  /// its prefixes as it goes (`advance`, `isDead`).
  public struct Trail: Sendable {
    var stack: [Int32]
    public private(set) var terminals: [Int]
    init(stack: [Int32], terminals: [Int]) {
      self.stack = stack
      self.terminals = terminals
    }
    mutating func expand(_ rhs: [Int32]) -> Bool { ConstraintSearch.expand(&stack, &terminals, rhs) }
    mutating func flush() -> Bool { ConstraintSearch.flush(&stack, &terminals) }
  }

  /// The trail of the empty derivation.
  public func trail() -> Trail {
    var t = Trail(stack: [grammar.tables.startNT], terminals: [])
    _ = t.flush()
    return t
  }

  /// Applies production p (which must expand the top symbol); true when it wrote terminals.
  public func advance(_ trail: inout Trail, by p: Int) -> Bool {
    guard let top = trail.stack.last, top >= 0, grammar.usable[p], grammar.lhsID[p] == top else { return false }
    return trail.expand(grammar.rhsIDs[p])
  }

  /// Whether no continuation of the trail's terminals can be accepted (for certain).
  public func isDead(_ trail: Trail) -> Bool { constraint.isCertainlyDead(trail.terminals) }

  /// The cheapest productions that finish `stack` (leftmost first) and the terminals then
  /// derived; nil when some symbol cannot finish.
  func shortestFinish(_ stack: [Int32], _ terminals: [Int]) -> (productions: [Int], terminals: [Int])? {
    var stack = stack
    var terminals = terminals
    var productions: [Int] = []
    while let top = stack.popLast() {
      if top < 0 {
        terminals.append(Int(~top))
        continue
      }
      let p = cheapest[Int(top)]
      guard p >= 0 else { return nil }
      productions.append(p)
      for s in grammar.rhsIDs[p].reversed() { stack.append(s) }
    }
    return (productions, terminals)
  }

  /// One leftmost step: the top non-terminal replaced by a right-hand side, then the
  /// terminals that surface moved to the output; true when some did.
  @inline(__always) static func expand(_ stack: inout [Int32], _ terminals: inout [Int], _ rhs: [Int32]) -> Bool {
    stack.removeLast()
    for s in rhs.reversed() { stack.append(s) }
    return flush(&stack, &terminals)
  }

  /// Moves terminals on top of the stack to the output.
  @inline(__always) static func flush(_ stack: inout [Int32], _ terminals: inout [Int]) -> Bool {
    var moved = false
    while let top = stack.last, top < 0 {
      terminals.append(Int(~top))
      stack.removeLast()
      moved = true
    }
    return moved
  }

  @inline(__always) func pendingSteps(_ stack: [Int32]) -> Int {
    var s = 0
    for x in stack where x >= 0 { s = Grammar.addSteps(s, grammar.minSteps[Int(x)]) }
    return s
  }

  /// A completion of `d` (productions, in order) that the constraint accepts, found by a
  /// depth-first search that tries first the productions reaching the constraint's goals
  /// soonest, then the ones that finish soonest; nil when none is found within `nodeLimit`.
  func witness(from d: ConstrainedDerivation) -> [Int]? {
    struct Frame {
      var stack: [Int32]
      var terminals: [Int]
      var steps: Int
      var advice: ConstraintAdvice
      var candidates: [Int]
      var next: Int
    }
    var frames: [Frame] = []
    var path: [Int] = []
    var nodes = 0
    var stack = d.stack
    var terminals = d.terminals
    var steps = d.steps
    let memo = d.memo
    var advice = memo.examine(terminals, constraint)
    var shortcuts = 0
    // Expands to a new frame, or reports a leaf: true = accepted, false = dead end.
    while true {
      var leaf: Bool? = nil
      let pending = stack.isEmpty ? 0 : pendingSteps(stack)
      if advice.status == .dead {
        leaf = false
      } else if stack.isEmpty {
        leaf = advice.status == .complete
      } else if Grammar.addSteps(steps, pending) > d.maxSteps {
        leaf = false
      } else {
        if advice.status == .complete && shortcuts < 2, let rest = shortestFinish(stack, terminals) {
          // Already acceptable: the cheapest way to finish, judged once as a whole, usually
          // is too (checking every terminal on the way would cost a judgement each).
          shortcuts += 1
          if memo.examine(rest.terminals, constraint).status == .complete { return path + rest.productions }
        }
        let top = Int(stack.last!)
        let rest = pending - grammar.minSteps[top]
        var scored: [(key: (Int, Int32, Int), p: Int)] = []
        for q in grammar.productionsOf[top] {
          let p = Int(q)
          guard grammar.usable[p] else { continue }
          let finish = grammar.stepsToFinish(production: p)
          if Grammar.addSteps(Grammar.addSteps(steps, finish), rest) > d.maxSteps { continue }
          var rank = advice.goals.count
          var soonest = never
          var then: Int? = nil
          for (i, g) in advice.goals.enumerated() {
            let r = reach(p, g.terminals)
            if r != never {
              rank = i
              soonest = r
              then = g.then
              break
            }
          }
          // Room for what is wanted after the goal first; then the shortest ending.
          let room = then.map { roomFor[p][$0] ? 0 : 1 } ?? 0
          let tie = room * 1_000_000 + finish
          scored.append(((rank, soonest, tie), p))
        }
        scored.sort { $0.key < $1.key || ($0.key == $1.key && $0.p < $1.p) }
        // Only the productions that reach a goal, when some do: the rest cannot help.
        if let first = scored.first, first.key.0 < advice.goals.count {
          scored.removeAll { $0.key.0 >= advice.goals.count }
        }
        frames.append(
          Frame(
            stack: stack, terminals: terminals, steps: steps, advice: advice,
            candidates: scored.map(\.p), next: 0))
      }
      if leaf == true { return path }
      // Next untried candidate of the deepest frame that has one. `path` holds one choice
      // per frame whose candidate is being explored.
      while true {
        guard !frames.isEmpty else { return nil }
        let deepest = frames.count - 1
        if path.count > deepest { path.removeSubrange(deepest...) }
        if frames[deepest].next >= frames[deepest].candidates.count {
          frames.removeLast()
          continue
        }
        nodes += 1
        if nodes > nodeLimit { return nil }
        let p = frames[deepest].candidates[frames[deepest].next]
        frames[deepest].next += 1
        path.append(p)
        stack = frames[deepest].stack
        terminals = frames[deepest].terminals
        steps = frames[deepest].steps + 1
        if ConstraintSearch.expand(&stack, &terminals, grammar.rhsIDs[p]) || stack.isEmpty {
          // Sibling productions often derive the same terminals (`chain -> atom` and
          // `chain -> atom chain` both write the atom next): judge each prefix once.
          advice = memo.examine(terminals, constraint)
        } else {
          advice = frames[deepest].advice
        }
        break
      }
    }
  }
}

/// Remembered judgements of terminal prefixes.
/// (A derivation is used by one decoding at a time; the table is not shared across threads.)
final class AdviceMemo: @unchecked Sendable {
  var table: [[Int]: ConstraintAdvice] = [:]

  func examine(_ terminals: [Int], _ constraint: any DerivationConstraint) -> ConstraintAdvice {
    if let known = table[terminals] { return known }
    let a = constraint.examine(terminals)
    table[terminals] = a
    return a
  }
}

/// One derivation under a constraint: the symbols still to expand, the terminals derived so
/// far, and a witness completion that the constraint accepts.
public struct ConstrainedDerivation: Sendable {
  let search: ConstraintSearch
  var stack: [Int32]  // top last; terminals are moved to `terminals` as soon as they surface
  public private(set) var terminals: [Int]
  public private(set) var steps: Int
  public let maxSteps: Int
  var witness: [Int] = []
  var witnessAt = 0
  /// Judgements shared by every search of this derivation and its descendants: consecutive
  /// searches revisit many of the same prefixes.
  let memo = AdviceMemo()

  init(search: ConstraintSearch, stack: [Int32], terminals: [Int], steps: Int, maxSteps: Int) {
    self.search = search
    self.stack = stack
    self.terminals = terminals
    self.steps = steps
    self.maxSteps = maxSteps
    _ = ConstraintSearch.flush(&self.stack, &self.terminals)
  }

  public var isComplete: Bool { stack.isEmpty }

  /// The production the kept witness takes next (always allowed); nil once complete.
  public var witnessNext: Int? { witnessAt < witness.count ? witness[witnessAt] : nil }

  /// The derivation after production `p` (which must expand the top symbol), without a witness.
  func advanced(by p: Int) -> ConstrainedDerivation? {
    guard let top = stack.last, top >= 0, search.grammar.usable[p], search.grammar.lhsID[p] == top
    else { return nil }
    var next = self
    _ = ConstraintSearch.expand(&next.stack, &next.terminals, search.grammar.rhsIDs[p])
    next.steps += 1
    next.witness = []
    next.witnessAt = 0
    return next
  }

  /// Whether production `p` is allowed now: the witness takes it, or a new witness exists
  /// after it. Costs a search unless the witness takes `p`.
  public func allows(_ p: Int) -> Bool {
    if p == witnessNext { return true }
    guard let next = advanced(by: p) else { return false }
    return search.witness(from: next) != nil
  }

  /// Applies `p` when it is allowed (see `allows`), keeping a witness; false (and no change)
  /// when it is not.
  public mutating func apply(_ p: Int) -> Bool {
    if p == witnessNext {
      guard let next = advanced(by: p) else { return false }
      let w = witness
      let at = witnessAt + 1
      self = next
      witness = w
      witnessAt = at
      return true
    }
    guard var next = advanced(by: p) else { return false }
    if let w = repairedWitness(after: p, next) ?? search.witness(from: next) {
      next.witness = w
      self = next
      return true
    }
    return false
  }

  /// The kept witness's remaining productions, when `p` expands the same non-terminals as
  /// the witness's next production (another atom, bond or digit) and the string they then
  /// derive is accepted: one check instead of a search.
  func repairedWitness(after p: Int, _ next: ConstrainedDerivation) -> [Int]? {
    guard let q = witnessNext else { return nil }
    let g = search.grammar
    guard g.rhsIDs[p].filter({ $0 >= 0 }) == g.rhsIDs[q].filter({ $0 >= 0 }) else { return nil }
    let tail = Array(witness[(witnessAt + 1)...])
    var d = next
    for r in tail {
      guard let e = d.advanced(by: r) else { return nil }
      d = e
    }
    guard d.isComplete, memo.examine(d.terminals, search.constraint).status == .complete else { return nil }
    return tail
  }

  /// Applies the witness's next production (always allowed) and returns it; nil when complete.
  public mutating func applyWitness() -> Int? {
    guard let p = witnessNext else { return nil }
    return apply(p) ? p : nil
  }
}
