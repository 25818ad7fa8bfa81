// Valence tables, public so that a grammar decoder constraint can reuse the same rules.

/// Allowed valences by element and charge, RDKit's model: a neutral atom uses its element's
/// list; a charged atom uses the list of the isoelectronic neutral element (atomic number
/// minus charge), so [N+] is valued like C (4), [O-] like F (1), [O+] like N (3), [C-] like
/// N (3), [B-] like C (4), [S+] like P (3, 5); P and S anions are the exception (see
/// `rawList`). A non-bracket (organic subset) atom takes the
/// lowest allowed valence at or above its bond-order sum and fills the rest with implicit H.
public enum Valence {
  /// The organic subset written without brackets, with RDKit's allowed valences. (RDKit
  /// allows N only 3: a neutral five-valent N is accepted only as a nitro/N-oxide or azide,
  /// which sanitization first rewrites to the charge-separated form.)
  public static let organicSubset: [(symbol: String, atomicNumber: Int, valences: [Int])] = [
    ("B", 5, [3]), ("C", 6, [4]), ("N", 7, [3]), ("O", 8, [2]), ("P", 15, [3, 5]),
    ("S", 16, [2, 4, 6]), ("F", 9, [1]), ("Cl", 17, [1]), ("Br", 35, [1]), ("I", 53, [1, 3, 5]),
  ]

  /// Aromatic symbols accepted in brackets, with their atomic numbers; outside brackets only
  /// b c n o p s.
  public static let aromaticBracketSymbols: [String: Int] = [
    "b": 5, "c": 6, "n": 7, "o": 8, "p": 15, "s": 16, "se": 34, "te": 52, "as": 33, "si": 14,
  ]

  private static let numberBySymbol: [String: Int] = {
    var d: [String: Int] = [:]
    for (z, e) in elements.enumerated() where z > 0 { d[e.symbol] = z }
    return d
  }()

  /// Atomic number of an element symbol ("C", "Cl", "Se"), nil if there is no such element.
  public static func atomicNumber(_ symbol: String) -> Int? { numberBySymbol[symbol] }

  public static func symbol(atomicNumber z: Int) -> String? {
    z >= 0 && z < elements.count ? elements[z].symbol : nil
  }

  /// Allowed valences, lowest first, of an atom with this atomic number and charge; nil when
  /// any valence is allowed (the table says "any" or the isoelectronic number is below 1).
  /// An empty list means no valence is allowed at all (atomic number minus charge beyond
  /// the periodic table).
  public static func allowedValences(atomicNumber z: Int, charge: Int = 0) -> [Int]? {
    let list = rawList(z, charge)
    // "-1" at the end means anything above the listed values.
    return list.last == -1 ? nil : list
  }

  /// The same by symbol (aromatic lower case accepted).
  public static func allowedValences(_ symbol: String, charge: Int = 0) -> [Int]? {
    guard let z = atomicNumber(symbol) ?? aromaticBracketSymbols[symbol] else { return [] }
    return allowedValences(atomicNumber: z, charge: charge)
  }

  /// The full table list (with RDKit's -1 for "any"), by isoelectronic atomic number.
  static func rawList(_ z: Int, _ charge: Int) -> [Int] {
    // RDKit values P and S anions (other than [P-], valued like S) by their own list
    // lowered by the charge, not by the isoelectronic element: [S-] allows 5, [P-2] 3,
    // [S-7] nothing (measured on RDKit 2026.09).
    if (z == 16 && charge < 0) || (z == 15 && charge < -1) {
      return elements[z].valences.map { $0 + charge }.filter { $0 >= 0 }
    }
    let effective = z - charge
    if effective >= elements.count { return [] }
    if effective <= 0 { return [-1] }
    return elements[effective].valences
  }

  /// Whether an aromatic ring atom must take one double bond in a Kekulé structure (RDKit's
  /// rule): its first allowed valence (raised while the total is above it) is one more
  /// than the sum of its ring bonds counted as single, other bond orders and hydrogens, and
  /// its connections do not already use it up. Pyridine n, c, [n+], [o+] take one; [nH],
  /// n with three connections, o, s, c=O do not.
  /// - Parameters:
  ///   - aromaticBonds: bonds to aromatic neighbours written without an order (counted 1).
  ///   - otherBondOrders: sum of the orders of the remaining bonds (exocyclic =O counts 2).
  ///   - degree: number of bonded neighbours.
  ///   - hydrogens: explicit plus implicit hydrogens.
  ///   - totalValence: explicit valence plus implicit hydrogens, as RDKit computes it.
  ///   - bracket: written in brackets (no implicit hydrogens; may take a radical instead).
  public static func needsDoubleBond(
    atomicNumber z: Int, charge: Int, aromaticBonds: Int, otherBondOrders: Int, degree: Int,
    hydrogens: Int, implicitHydrogens: Int, totalValence: Int, bracket: Bool
  ) -> Bool {
    let list = rawList(z, charge)
    guard var dv = list.first, dv >= 0 else { return false }
    var k = 1
    while totalValence > dv && k < list.count && list[k] > 0 {
      dv = list[k]
      k += 1
    }
    if degree + implicitHydrogens >= dv { return false }
    let sbo = aromaticBonds + otherBondOrders + hydrogens
    return dv == sbo + 1 || (bracket && dv == sbo + 2)
  }

  /// Electrons an aromatic ring atom gives the π system, as in RDKit's aromaticity model:
  /// 1 when it takes a ring double bond (c, pyridine n, [n+]), 0 when an exocyclic double
  /// bond uses its p orbital (c=O), otherwise 2 for a lone pair ([nH], o, s, [c-]) or 0
  /// (boron, [c+]).
  public static func aromaticElectrons(
    atomicNumber z: Int, charge: Int, takesRingDoubleBond: Bool, exocyclicDoubleBond: Bool
  ) -> Int {
    if takesRingDoubleBond { return 1 }
    if exocyclicDoubleBond { return 0 }
    let effective = z - charge
    guard effective > 0 && effective < elements.count else { return 0 }
    return elements[effective].outerElectrons >= 5 ? 2 : 0
  }
}
