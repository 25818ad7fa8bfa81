// The chemistry constraint: SMILES prefixes judged by the Chemistry module, so that a
// decoder on a SMILES grammar emits only molecules (valences, ring closures, kekulizable
// aromatic rings), whatever the network prefers.
import CFG
import Chemistry

/// `DerivationConstraint` for SMILES grammars (zinc, zinc-rr, or a user's SMILES grammar).
public struct SMILESConstraint: DerivationConstraint {
  let bytes: [[UInt8]]  // [terminal]
  let index: [String: Int]

  public init(grammar: Grammar) {
    bytes = grammar.terminals.map { Array($0.utf8) }
    var index: [String: Int] = [:]
    for (i, t) in grammar.terminals.enumerated() where index[t] == nil { index[t] = i }
    self.index = index
  }

  /// A finished string is judged by the checker alone (its verdicts match RDKit's on all of
  /// ZINC): the prefix rules are stricter on a few aromatic patterns RDKit accepts (exocyclic
  /// `C=c`, `/` between aromatic atoms), and a decode that is already such a molecule stays.
  public func acceptsComplete(_ terminals: [Int]) -> Bool {
    SMILES.check(String(decoding: text(terminals), as: UTF8.self)).isValid
  }

  /// Syntax, ring-closure and valence errors only (see `SMILES.certainlyDead`).
  public func isCertainlyDead(_ terminals: [Int]) -> Bool {
    SMILES.certainlyDead(prefix: text(terminals))
  }

  /// The SMILES bytes of a terminal sequence.
  func text(_ terminals: [Int]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(terminals.count * 2)
    for t in terminals { out += bytes[t] }
    return out
  }

  public func examine(_ terminals: [Int]) -> ConstraintAdvice {
    let a = SMILES.advise(prefix: text(terminals))
    let status: ConstraintAdvice.Status
    switch a.status {
    case .dead: status = .dead
    case .open: status = .open
    case .complete: status = .complete
    }
    return ConstraintAdvice(
      status: status,
      goals: a.goals.compactMap { g in
        let t = g.terminals.compactMap { index[$0] }
        guard t.count == g.terminals.count else { return nil }
        return ConstraintAdvice.Goal(t, then: g.then.flatMap { index[$0] })
      })
  }
}

/// What decoding guarantees beyond the model's own choices.
public enum DecodingConstraints: String, Sendable, CaseIterable, Codable {
  /// The grammar's stack mask only (the paper's decoder): a derivation may be unfinished at
  /// the length limit.
  case none
  /// The stack mask and the length budget: every output is a complete derivation.
  case grammar
  /// Also the chemistry constraint: every output is a valid molecule (SMILES grammars).
  case chemistry

  /// The default for a model: chemistry on a SMILES grammar, else the grammar budget.
  public static func defaultFor(_ model: VAEModel) -> DecodingConstraints {
    model.configuration.kind == .grammar && model.grammar.isSMILES ? .chemistry : .grammar
  }
}

extension Grammar {
  /// Whether this grammar derives SMILES (judged by its name: zinc, zinc-rr, or a file whose
  /// name starts with "zinc" or "smiles").
  public var isSMILES: Bool {
    let n = name.lowercased()
    let base = n.split(separator: "/").last.map(String.init) ?? n
    return base.hasPrefix("zinc") || base.hasPrefix("smiles")
  }
}
