// RDKit's sanitization steps that can reject a molecule, in its order: clean-up of
// hypervalent N/P/halogen oxides, valences (first atom in input order), aromatic atoms
// outside rings, kekulization.

extension Molecule {
  /// The first rule broken, or nil when the molecule is sane.
  mutating func sanitize() -> SMILESError? {
    cleanUp()
    if let e = assignValences() { return e }
    markRingBonds()
    return kekulize()
  }

  func error(_ rule: SMILESRule, atom k: Int, _ message: String) -> SMILESError {
    SMILESError(rule: rule, column: atoms[k].column, atom: k, element: atoms[k].symbol, message: message)
  }

  func hasAromaticBond(_ k: Int) -> Bool { atoms[k].bonds.contains { bonds[$0].order == .aromatic } }

  func isAromaticAtom(_ k: Int) -> Bool { atoms[k].aromatic || hasAromaticBond(k) }

  /// Bond-order sum plus explicit hydrogens, in half units.
  func valenceHalves(_ k: Int) -> Int {
    var h = 2 * atoms[k].hydrogens
    for b in atoms[k].bonds { h += bonds[b].order.halves }
    return h
  }

  // MARK: clean-up

  /// RDKit rewrites neutral five-valent N with =O (or #N), five-valent P with =O and =C/N,
  /// and halogen oxo acids to charge-separated forms before checking valences; without this
  /// CN(=O)=O, c1ccn(=O)cc1 and OCl(=O)(=O)=O would fail.
  mutating func cleanUp() {
    for k in atoms.indices {
      switch atoms[k].element {
      case 7:
        // Aromatic bonds earn the aromatic allowance here too: n#n in a ring sums to 4.5,
        // snaps to 3, is left alone.
        guard atoms[k].charge == 0, explicitValenceStrictless(k) == 5 else { continue }
        for b in atoms[k].bonds {
          let o = bonds[b].other(k)
          if atoms[o].element == 8 && atoms[o].charge == 0 && bonds[b].order == .double {
            bonds[b].order = .single
            atoms[k].charge = 1
            atoms[o].charge = -1
            break
          } else if atoms[o].element == 7 && atoms[o].charge == 0 && bonds[b].order == .triple {
            bonds[b].order = .double
            atoms[k].charge = 1
            atoms[o].charge = -1
            break
          }
        }
      case 15:
        guard atoms[k].charge == 0, atoms[k].bonds.count == 3, explicitValenceStrictless(k) == 5 else {
          continue
        }
        var doubleToO = -1
        var doubleToCN = false
        for b in atoms[k].bonds where bonds[b].order == .double {
          let o = bonds[b].other(k)
          if atoms[o].element == 8 && atoms[o].charge == 0 {
            doubleToO = b
          } else if (atoms[o].element == 6 || atoms[o].element == 7) && atoms[o].bonds.count >= 2 {
            doubleToCN = true
          }
        }
        if doubleToCN && doubleToO >= 0 {
          bonds[doubleToO].order = .single
          atoms[bonds[doubleToO].other(k)].charge = -1
          atoms[k].charge = 1
        }
      case 17, 35, 53:
        let ev = explicitValenceStrictless(k)
        guard atoms[k].charge == 0, ev == 3 || ev == 5 || ev == 7 else { continue }
        guard atoms[k].bonds.allSatisfy({ atoms[bonds[$0].other(k)].element == 8 }) else { continue }
        var charge = 0
        for b in atoms[k].bonds where bonds[b].order == .double {
          bonds[b].order = .single
          atoms[bonds[b].other(k)].charge = -1
          charge += 1
        }
        atoms[k].charge = charge
      default:
        continue
      }
    }
  }

  /// RDKit's explicit valence: bond orders (aromatic 1.5) plus explicit H; for an atom with
  /// aromatic character above its first valence, snapped down to the highest allowed valence
  /// within 1.5 (the n in c1cccn1C sums to 4 but is 3 once kekulized); x.5 rounds up.
  func explicitValenceStrictless(_ k: Int) -> Int {
    var halves = valenceHalves(k)
    let list = Valence.rawList(atoms[k].element, atoms[k].charge)
    // Outside brackets only aromatic bonds earn the allowance: an atom written aromatic
    // without any is held to its plain valences (measured on RDKit 2026.09: C1CCCc1(C)=O,
    // C1CCCn1(C)C, C1CCCo1C and C1CCn1=O fail), while a bracket atom keeps it from its flag
    // (C1CCC[nH]1C and C1CCC[sH]1(C)C pass).
    let aromatic = hasAromaticBond(k) || (atoms[k].bracket && atoms[k].aromatic)
    if let dv = list.first, dv >= 0, halves > 2 * dv, aromatic {
      var pval = dv
      for v in list where v >= 0 {
        if 2 * v > halves { break }
        pval = v
      }
      if halves - 2 * pval <= 3 { halves = 2 * pval }
    }
    return (halves + 1) / 2
  }

  // MARK: valences

  /// Explicit valence and implicit hydrogens of every atom; the first atom above its highest
  /// allowed valence is the error.
  mutating func assignValences() -> SMILESError? {
    for k in atoms.indices {
      let ev = explicitValenceStrictless(k)
      atoms[k].explicitValence = ev
      let list = Valence.rawList(atoms[k].element, atoms[k].charge)
      let a = atoms[k]
      if list.isEmpty {
        return error(
          .valence, atom: k, "charge \(a.charge) is not allowed on \(Valence.symbol(atomicNumber: a.element) ?? "?")")
      }
      if let e = valenceExceeded(k, ev) { return e }
      guard !a.bracket, let dv = list.first, dv >= 0 else {
        atoms[k].implicitHydrogens = 0
        continue
      }
      // An atom written aromatic without aromatic bonds takes hydrogens as a plain one does
      // (RDKit 2026.09: the s of C1CCCs1C has valence 3 and one hydrogen).
      if a.aromatic && hasAromaticBond(k) {
        atoms[k].implicitHydrogens = ev <= dv ? dv - ev : 0
      } else {
        var h = 0
        for v in list where v >= ev {
          h = v - ev
          break
        }
        atoms[k].implicitHydrogens = h
      }
    }
    return nil
  }

  /// The valence error when `ev` is above the highest valence the atom's element and
  /// charge allow.
  func valenceExceeded(_ k: Int, _ ev: Int) -> SMILESError? {
    let a = atoms[k]
    let list = Valence.rawList(a.element, a.charge)
    guard let top = list.last, top >= 0, ev > top else { return nil }
    var what = Valence.symbol(atomicNumber: a.element) ?? a.symbol
    if a.charge != 0 {
      what += (a.charge > 0 ? "+" : "-") + (abs(a.charge) == 1 ? "" : String(abs(a.charge)))
    }
    let allowed = list.map(String.init).joined(separator: ", ")
    return error(.valence, atom: k, "valence \(ev) is more than \(what) allows (\(allowed))")
  }

  // MARK: rings

  /// A bond is in a ring exactly when it is not a bridge; found with an iterative DFS
  /// (low-link), so long chains do not recurse.
  mutating func markRingBonds() {
    let n = atoms.count
    var order = [Int](repeating: -1, count: n)
    var low = [Int](repeating: 0, count: n)
    var counter = 0
    // Stack frames: atom, the bond it was entered by, next bond position to look at.
    var stack: [(atom: Int, via: Int, next: Int)] = []
    for root in 0..<n where order[root] < 0 {
      order[root] = counter
      low[root] = counter
      counter += 1
      stack.append((root, -1, 0))
      while !stack.isEmpty {
        let top = stack.count - 1
        let v = stack[top].atom
        if stack[top].next < atoms[v].bonds.count {
          let b = atoms[v].bonds[stack[top].next]
          stack[top].next += 1
          if b == stack[top].via { continue }
          let w = bonds[b].other(v)
          if order[w] < 0 {
            order[w] = counter
            low[w] = counter
            counter += 1
            stack.append((w, b, 0))
          } else {
            // A back edge closes a cycle.
            low[v] = min(low[v], order[w])
            bonds[b].inRing = true
          }
        } else {
          let frame = stack.removeLast()
          if let parent = stack.last {
            let p = parent.atom
            low[p] = min(low[p], low[v])
            if low[v] <= order[p] { bonds[frame.via].inRing = true }
          }
        }
      }
    }
  }

  func inRing(_ k: Int) -> Bool { atoms[k].bonds.contains { bonds[$0].inRing } }

  // MARK: kekulization

  /// Aromatic atoms must be in rings, and the atoms that need a double bond must be
  /// matched in pairs along aromatic ring bonds (a perfect matching, found by augmenting
  /// paths with blossoms — RDKit's backtracking search finds the same structures).
  func kekulize() -> SMILESError? {
    var candidates: [Int] = []
    var local = [Int](repeating: -1, count: atoms.count)
    for k in atoms.indices where atoms[k].aromatic {
      if !inRing(k) { return error(.aromaticity, atom: k, "aromatic atom is not in a ring") }
      let a = atoms[k]
      var aromaticBonds = 0
      var other = 0
      for b in a.bonds {
        if bonds[b].order == .aromatic { aromaticBonds += 1 } else { other += bonds[b].order.integer }
      }
      let h = a.hydrogens + a.implicitHydrogens
      if Valence.needsDoubleBond(
        atomicNumber: a.element, charge: a.charge, aromaticBonds: aromaticBonds, otherBondOrders: other,
        degree: a.bonds.count, hydrogens: h, implicitHydrogens: a.implicitHydrogens,
        totalValence: a.explicitValence + a.implicitHydrogens, bracket: a.bracket)
      {
        local[k] = candidates.count
        candidates.append(k)
      }
    }
    if candidates.isEmpty { return nil }
    var adj = [[Int]](repeating: [], count: candidates.count)
    for (i, k) in candidates.enumerated() {
      for b in atoms[k].bonds where bonds[b].order == .aromatic && bonds[b].inRing {
        let j = local[bonds[b].other(k)]
        if j >= 0 && atoms[bonds[b].other(k)].aromatic { adj[i].append(j) }
      }
    }
    let (match, unmatched) = Matching.perfect(adj)
    if let first = unmatched {
      return error(
        .aromaticity, atom: candidates[first],
        "cannot kekulize: no alternating double bond for this aromatic atom "
          + "(\(candidates.count) aromatic atoms need one)")
    }
    // RDKit checks valences again at the end of sanitization, after kekulization and
    // aromaticity perception: atoms its aromaticity model leaves non-aromatic are checked
    // with Kekulé bond orders, without the aromatic allowance (c1cc=oc1, an aromatic o
    // with three single bonds). We do not rerun aromaticity perception; an atom with a
    // ring triple bond (benzyne-like, which RDKit keeps aromatic) keeps the allowance.
    var partner = [Int](repeating: -1, count: atoms.count)
    for (i, j) in match.enumerated() where j >= 0 { partner[candidates[i]] = candidates[j] }
    for k in atoms.indices where isAromaticAtom(k) {
      if atoms[k].bonds.contains(where: { bonds[$0].order == .triple }) { continue }
      var ev = atoms[k].hydrogens
      for b in atoms[k].bonds {
        let bond = bonds[b]
        if bond.order == .aromatic {
          ev += partner[k] == bond.other(k) ? 2 : 1
        } else {
          ev += bond.order.integer
        }
      }
      if let e = valenceExceeded(k, ev) { return e }
    }
    return nil
  }

  // MARK: summary

  func summary() -> SMILESSummary {
    // Fragments by union-find over bonds.
    var parent = Array(atoms.indices)
    func find(_ x: Int) -> Int {
      var r = x
      while parent[r] != r { r = parent[r] }
      var y = x
      while parent[y] != r {
        let next = parent[y]
        parent[y] = r
        y = next
      }
      return r
    }
    var fragments = atoms.count
    for b in bonds {
      let (x, y) = (find(b.a), find(b.b))
      if x != y {
        parent[x] = y
        fragments -= 1
      }
    }
    var counts: [String: Int] = [:]
    for a in atoms where a.element != 1 {
      counts[Valence.symbol(atomicNumber: a.element) ?? a.symbol, default: 0] += 1
    }
    return SMILESSummary(
      atomCount: atoms.count, bondCount: bonds.count, ringCount: bonds.count - atoms.count + fragments,
      fragmentCount: fragments, aromaticAtomCount: atoms.filter(\.aromatic).count, heavyAtomCounts: counts)
  }
}
