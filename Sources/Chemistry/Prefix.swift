// Judging SMILES prefixes: whether a string that is still being written can become a
// molecule, and what to write next to get there. A decoder's semantic constraint uses it to
// search for a completion (a witness) after each choice it considers.

/// What a prefix of a SMILES string allows.
public struct SMILESPrefixAdvice: Equatable, Sendable {
  public enum Status: Equatable, Sendable {
    /// No continuation can make a molecule of it (a valence already exceeded, a ring
    /// closure onto a bonded atom, a closed aromatic system with no Kekulé structure, …).
    case dead
    /// Not a molecule yet (open rings or branches, a trailing bond, an aromatic atom
    /// outside any ring), but nothing rules a continuation out.
    case open
    /// A valid molecule as it stands (it may still be continued).
    case complete
  }

  public var status: Status
  /// What to write next, best first, as short terminal sequences: a ring-closure digit that
  /// closes an open ring legally now, an atom and then a digit that closes a ring through it,
  /// an atom that extends the open ring ("c" in an aromatic ring, else "C"), a fresh ring
  /// digit when an aromatic atom still needs a ring. Empty when nothing more is needed.
  public var goals: [Goal]

  /// Terminals to write next, and what is still wanted after them (an atom while other
  /// rings stay open; nil when they would complete the molecule).
  public struct Goal: Equatable, Sendable {
    public var terminals: [String]
    public var then: String?
    public init(_ terminals: [String], then: String? = nil) {
      self.terminals = terminals
      self.then = then
    }
  }

  public init(status: Status, goals: [Goal] = []) {
    self.status = status
    self.goals = goals
  }
}

extension SMILES {
  /// Judges a SMILES prefix (bytes of the organic-subset dialect with bracket atoms; a
  /// bracket still open at the end is ignored until it closes).
  ///
  /// Sound for `.dead`: an atom whose bonds and hydrogens already exceed its largest
  /// allowed valence, a syntax error or a bad ring closure cannot be repaired by writing
  /// more. It is conservative in one place: once every ring and branch is closed, an
  /// aromatic system that cannot be kekulized is `.dead` (only a further fused ring could
  /// repair it, and a decoder is better off not relying on one).
  public static func advise(prefix: [UInt8]) -> SMILESPrefixAdvice {
    var bytes = prefix
    var bracketOpen = false
    if let open = bytes.lastIndex(of: UInt8(ascii: "[")),
      !bytes[open...].contains(UInt8(ascii: "]"))
    {
      bytes.removeSubrange(open...)
      bracketOpen = true
    }
    if bytes.isEmpty { return SMILESPrefixAdvice(status: .open, goals: [.init(["C"])]) }
    var parser = Parser(bytes: bytes, columnOffset: 0)
    parser.partial = true
    guard case .success(var mol) = parser.parse() else { return SMILESPrefixAdvice(status: .dead) }
    let end = parser.end

    // The constraint stays where this checker and RDKit agree. Exotic aromatic atoms (never
    // in ZINC) are where RDKit's kekulizer refuses what a matching allows: charges beyond ±1, charged o or s, bracket radicals ([c], [s]), more than
    // three bonds on n, o, s (four on c, as in c=O), double bonds to anything but O, S, N,
    // and / or \ between two aromatic atoms.
    for (k, a) in mol.atoms.enumerated() where a.aromatic {
      if abs(a.charge) > 1 || (a.charge != 0 && (a.element == 8 || a.element == 16)) {
        return SMILESPrefixAdvice(status: .dead)
      }
      if a.bracket && a.hydrogens == 0 && a.charge == 0 && a.element != 7 {
        return SMILESPrefixAdvice(status: .dead)
      }
      var used = a.hydrogens
      for b in a.bonds {
        let bond = mol.bonds[b]
        used += bond.order.integer
        if bond.directional && mol.atoms[bond.other(k)].aromatic { return SMILESPrefixAdvice(status: .dead) }
        if bond.order == .double || bond.order == .triple || bond.order == .quadruple {
          let other = mol.atoms[bond.other(k)]
          if other.aromatic || ![7, 8, 16].contains(other.element) { return SMILESPrefixAdvice(status: .dead) }
        }
      }
      if used > (a.element == 6 ? 4 : 3) { return SMILESPrefixAdvice(status: .dead) }
    }
    // Bonds and hydrogens so far against the largest valence each atom may reach.
    var free = [Int](repeating: Int.max, count: mol.atoms.count)
    for k in mol.atoms.indices {
      let a = mol.atoms[k]
      var used = a.hydrogens
      for b in a.bonds { used += mol.bonds[b].order.integer }
      guard let list = Valence.allowedValences(atomicNumber: a.element, charge: a.charge) else {
        continue
      }
      guard let top = list.max(), used <= top else { return SMILESPrefixAdvice(status: .dead) }
      free[k] = top - used
    }
    let current = end.lastAtom
    // An aromatic atom that will take no more bonds and has one neighbour can never be in
    // a ring.
    var active = Set(end.branchAtoms)
    active.insert(current)
    for r in end.rings.values { active.insert(r.atom) }
    for k in mol.atoms.indices where mol.atoms[k].aromatic && mol.atoms[k].bonds.count <= 1 {
      if !active.contains(k) {
        return SMILESPrefixAdvice(status: .dead)
      }
    }
    let fresh = (1...8).first { end.rings[$0] == nil }.map { String($0) }

    if end.rings.isEmpty && end.openBranches == 0 && end.state == .atom && !bracketOpen {
      // Everything is closed: the prefix is a molecule or it is not.
      if let e = mol.sanitize() {
        if e.rule == .aromaticity, let k = e.atom, k == current, !mol.inRing(k) {
          return SMILESPrefixAdvice(
            status: .open, goals: (fresh.map { [.init([$0], then: "c")] } ?? []) + [.init(["c"], then: "c")])
        }
        // The last atom of a ring just closed can still take a bond that changes what the
        // ring gives to its π system: a substituent on n (pyrrole-type, `cn1C`), an exocyclic
        // =O on c (`[nH]c1=O`). Common in ZINC, so not dead.
        if e.rule == .aromaticity, current >= 0, mol.atoms[current].aromatic, mol.inRing(current), free[current] >= 1 {
          let a = mol.atoms[current]
          let fix: SMILESPrefixAdvice.Goal = a.element == 6 && free[current] >= 2 ? .init(["=", "O"]) : .init(["C"])
          return SMILESPrefixAdvice(status: .open, goals: [fix])
        }
        return SMILESPrefixAdvice(status: .dead)
      }
      return SMILESPrefixAdvice(status: .complete)
    }
    if bracketOpen || current < 0 || (end.state != .atom && end.rings.isEmpty) {
      // An atom comes next.
      let aromatic = end.rings.values.contains { mol.atoms[$0.atom].aromatic }
      // After a bond or '(' the atom completes nothing by itself unless no ring is open (an
      // open branch needs no more atoms: the grammar closes it).
      let then: String? = end.rings.isEmpty ? nil : (aromatic ? "c" : "C")
      return SMILESPrefixAdvice(
        status: .open,
        goals: aromatic ? [.init(["c"], then: then), .init(["C"], then: then)] : [.init(["C"], then: then), .init(["c"], then: then)])
    }
    // Rings the current atom can close now, and rings a new atom bonded to it could close.
    var closeNow: [(size: Int, label: Int)] = []
    var closeNext: [(size: Int, label: Int)] = []
    var aromaticRing = false
    for (label, ring) in end.rings {
      let o = ring.atom
      let aromatic = mol.atoms[o].aromatic
      if aromatic { aromaticRing = true }
      let order = ring.bond?.order.integer ?? 1
      guard free[o] >= order else { continue }
      let path = mol.path(from: o, to: current)
      guard !path.isEmpty else { continue }
      // Kekulé rule of thumb for the new ring: atoms that give a lone pair ([nH], n with
      // three bonds, o, s) count 2 π electrons; six-rings want none, five-rings one.
      var donors = 0
      for k in path where mol.atoms[k].aromatic {
        let a = mol.atoms[k]
        let degree = a.bonds.count + a.hydrogens + (k == o || k == current ? 1 : 0)
        if a.element == 8 || a.element == 16 || (a.element == 7 && degree >= 3) { donors += 1 }
      }
      func fits(_ size: Int) -> Bool {
        guard aromatic else { return size >= 3 }
        return size == 5 ? donors == 1 : size >= 6 && (size - donors) % 2 == 0
      }
      if end.state == .atom || end.state == .bond, o != current, mol.bondBetween(o, current) == nil, free[current] >= order, fits(path.count),
        aromatic == mol.atoms[current].aromatic
      {
        closeNow.append((path.count, label))
      }
      if free[current] >= 1, fits(path.count + 1) { closeNext.append((path.count + 1, label)) }
    }
    let extend = aromaticRing && mol.atoms[current].aromatic ? "c" : "C"
    // Closing one ring completes the molecule only when it is the last open ring (open
    // branches need no more atoms: the grammar writes their ')').
    let more: String? = end.rings.count > 1 ? extend : nil
    var goals: [SMILESPrefixAdvice.Goal] = []
    // No ring open (so a branch is, or the prefix was judged above): closing the branches is
    // the shortest way to a molecule.
    if end.rings.isEmpty {
      goals.append(.init([")"]))
    }
    for c in closeNow.sorted(by: { ($0.size, $0.label) < ($1.size, $1.label) }) {
      goals.append(.init([String(c.label)], then: more))
    }
    for c in closeNext.sorted(by: { ($0.size, $0.label) < ($1.size, $1.label) }) {
      goals.append(.init([extend, String(c.label)], then: more))
    }
    goals.append(.init([extend], then: extend))
    if let fresh, mol.atoms[current].aromatic, !mol.inRing(current) {
      goals.append(.init([fresh], then: extend))
    }
    return SMILESPrefixAdvice(status: .open, goals: goals)
  }
}

extension SMILES {
  /// Whether no continuation of a SMILES prefix can be a valid molecule by `check`: a syntax
  /// or ring-closure error, or an atom whose bonds and hydrogens already exceed its largest
  /// valence. Unlike `advise`, it leaves out the conservative rules (aromatic patterns this
  /// checker and RDKit may judge differently, a closed aromatic system that a further fused
  /// ring could still repair), so a decoder can drop a prefix early on its word alone.
  public static func certainlyDead(prefix: [UInt8]) -> Bool {
    var bytes = prefix
    if let open = bytes.lastIndex(of: UInt8(ascii: "[")), !bytes[open...].contains(UInt8(ascii: "]")) {
      bytes.removeSubrange(open...)
    }
    if bytes.isEmpty { return false }
    var parser = Parser(bytes: bytes, columnOffset: 0)
    parser.partial = true
    guard case .success(let mol) = parser.parse() else { return true }
    for a in mol.atoms {
      guard let list = Valence.allowedValences(atomicNumber: a.element, charge: a.charge), let top = list.max()
      else { continue }
      var used = a.hydrogens
      for b in a.bonds { used += mol.bonds[b].order.integer }
      if used > top { return true }
    }
    return false
  }
}

extension Molecule {
  /// Atoms on a shortest bond path from `a` to `b`, both included (empty if unconnected).
  func path(from a: Int, to b: Int) -> [Int] {
    var parent = [Int](repeating: -1, count: atoms.count)
    parent[a] = a
    var queue = [a]
    var head = 0
    while head < queue.count {
      let v = queue[head]
      head += 1
      if v == b { break }
      for k in atoms[v].bonds {
        let w = bonds[k].other(v)
        if parent[w] < 0 {
          parent[w] = v
          queue.append(w)
        }
      }
    }
    guard parent[b] >= 0 else { return [] }
    var out = [b]
    var v = b
    while v != a {
      v = parent[v]
      out.append(v)
    }
    return out
  }
}
