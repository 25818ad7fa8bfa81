// Iterative SMILES parser: one pass over the bytes with an explicit branch stack, so nesting
// depth costs heap, not call stack.

/// Bond orders; valence contributions are kept in half units so aromatic (1.5) stays exact.
enum BondOrder: UInt8 {
  case single, double, triple, quadruple, aromatic

  var halves: Int {
    switch self {
    case .single: return 2
    case .double: return 4
    case .triple: return 6
    case .quadruple: return 8
    case .aromatic: return 3
    }
  }
  /// Integer order as RDKit's kekulizer counts a non-aromatic bond.
  var integer: Int {
    switch self {
    case .single, .aromatic: return 1
    case .double: return 2
    case .triple: return 3
    case .quadruple: return 4
    }
  }
}

struct Atom {
  var element: Int  // atomic number
  var symbol: String  // as written, without brackets
  var aromatic: Bool
  var bracket: Bool  // bracket atoms carry their hydrogens explicitly (no implicit H)
  var hydrogens: Int  // explicit, from the bracket
  var charge: Int
  var column: Int
  var bonds: [Int] = []
  // Filled by the valence pass.
  var explicitValence = 0
  var implicitHydrogens = 0
}

struct Bond {
  var a: Int
  var b: Int
  var order: BondOrder
  var inRing = false
  /// Written as / or \ (a stereo mark; between aromatic atoms the bond is aromatic).
  var directional = false
  func other(_ i: Int) -> Int { i == a ? b : a }
}

struct Molecule {
  var atoms: [Atom] = []
  var bonds: [Bond] = []

  mutating func addBond(_ a: Int, _ b: Int, _ order: BondOrder, directional: Bool = false) {
    bonds.append(Bond(a: a, b: b, order: order, directional: directional))
    atoms[a].bonds.append(bonds.count - 1)
    atoms[b].bonds.append(bonds.count - 1)
  }

  func bondBetween(_ a: Int, _ b: Int) -> Int? {
    // Scan the atom with fewer bonds.
    let (x, y) = atoms[a].bonds.count <= atoms[b].bonds.count ? (a, b) : (b, a)
    for k in atoms[x].bonds where bonds[k].other(x) == y { return k }
    return nil
  }
}

/// A bond symbol as written.
struct BondToken {
  var symbol: UInt8
  var column: Int
  var isDirectional: Bool { symbol == UInt8(ascii: "/") || symbol == UInt8(ascii: "\\") }
  var order: BondOrder {
    switch symbol {
    case UInt8(ascii: "="): return .double
    case UInt8(ascii: "#"): return .triple
    case UInt8(ascii: "$"): return .quadruple
    case UInt8(ascii: ":"): return .aromatic
    default: return .single  // - / \
    }
  }
}

struct Parser {
  let bytes: [UInt8]
  let columnOffset: Int
  var i = 0
  /// Prefix mode: the input may stop anywhere a longer string could continue it (open rings
  /// and branches, a trailing bond); what is open is left in `end`.
  var partial = false
  /// The parser's state where the input ended (filled in prefix mode).
  var end = EndState()

  struct EndState {
    var state = State.start
    var lastAtom = -1
    var rings: [Int: OpenRing] = [:]
    var openBranches = 0
    /// Atoms that open branches still open (they take more bonds when the branch closes).
    var branchAtoms: [Int] = []
  }

  init(bytes: [UInt8], columnOffset: Int) {
    self.bytes = bytes
    self.columnOffset = columnOffset
  }

  /// What the previous token allows next.
  enum State { case start, atom, openBranch, bond }

  struct OpenRing {
    var atom: Int
    var bond: BondToken?
    var column: Int
  }

  func column(_ at: Int) -> Int { columnOffset + at + 1 }

  func syntax(_ at: Int, _ message: String) -> Result<Molecule, SMILESError> {
    .failure(SMILESError(rule: .syntax, column: column(at), message: message))
  }

  func describe(_ b: UInt8) -> String {
    if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
    if b == 0x20 { return "' '" }
    if b >= 0x80 { return "(a non-ASCII character)" }
    return "control character 0x" + String(b, radix: 16)
  }

  mutating func parse() -> Result<Molecule, SMILESError> {
    var mol = Molecule()
    if bytes.isEmpty {
      return .failure(SMILESError(rule: .syntax, column: 1, message: "empty input"))
    }
    var state = State.start
    var prev = -1  // atom the next bond starts from
    var pending: BondToken? = nil
    var bondAfterBranch = false  // "C(=1" is not a ring bond
    var branches: [(atom: Int, column: Int)] = []
    var rings: [Int: OpenRing] = [:]
    let n = bytes.count

    while i < n {
      let c = bytes[i]
      let at = i
      switch c {
      case UInt8(ascii: "("):
        switch state {
        case .start: return syntax(at, "branch '(' with no atom before it")
        case .openBranch: return syntax(at, "branch '(' with no atom before it (empty branch)")
        case .bond: return syntax(at, "bond before a branch '('")
        case .atom: break
        }
        branches.append((prev, at))
        state = .openBranch
        i += 1
      case UInt8(ascii: ")"):
        switch state {
        case .openBranch: return syntax(at, "empty branch '()'")
        case .bond: return syntax(at, "bond at the end of a branch")
        case .start: return syntax(at, "')' with no atom before it")
        case .atom: break
        }
        guard let top = branches.popLast() else { return syntax(at, "unbalanced ')': no '(' to close") }
        prev = top.atom
        state = .atom
        i += 1
      case UInt8(ascii: "."):
        switch state {
        case .start: return syntax(at, "'.' with no atom before it")
        case .openBranch: return syntax(at, "'.' at the start of a branch")
        case .bond: return syntax(at, "bond before '.'")
        case .atom: break
        }
        prev = -1
        state = .start
        i += 1
      case UInt8(ascii: "-"), UInt8(ascii: "="), UInt8(ascii: "#"), UInt8(ascii: "$"),
        UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "\\"):
        switch state {
        case .start: return syntax(at, "bond \(describe(c)) with no atom before it")
        case .bond: return syntax(at, "two bonds in a row")
        case .atom, .openBranch: break
        }
        bondAfterBranch = state == .openBranch
        pending = BondToken(symbol: c, column: column(at))
        state = .bond
        i += 1
        // RDKit reads a doubled backslash (as escaped in code) as one down bond.
        if c == UInt8(ascii: "\\"), i < n, bytes[i] == c { i += 1 }
      case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "%"):
        switch state {
        case .start: return syntax(at, "ring-closure digit with no atom before it")
        case .openBranch: return syntax(at, "ring-closure digit at the start of a branch")
        case .bond where bondAfterBranch: return syntax(at, "ring-closure digit at the start of a branch")
        case .atom, .bond: break
        }
        var label: Int
        if c == UInt8(ascii: "%") {
          if i + 1 < n, bytes[i + 1] == UInt8(ascii: "(") {
            var j = i + 2
            label = 0
            while j < n, isDigit(bytes[j]), j - i < 8 {
              label = label * 10 + Int(bytes[j] - 48)
              j += 1
            }
            guard j > i + 2, j < n, bytes[j] == UInt8(ascii: ")") else {
              return syntax(at, "'%(' must be followed by digits and ')'")
            }
            i = j + 1
          } else {
            guard i + 2 < n, isDigit(bytes[i + 1]), isDigit(bytes[i + 2]) else {
              return syntax(at, "'%' must be followed by two digits")
            }
            label = Int(bytes[i + 1] - 48) * 10 + Int(bytes[i + 2] - 48)
            i += 3
          }
        } else {
          label = Int(c - 48)
          i += 1
        }
        if let open = rings.removeValue(forKey: label) {
          let other = open.atom
          if other == prev {
            return .failure(
              SMILESError(
                rule: .ringClosure, column: column(at), atom: prev, element: mol.atoms[prev].symbol,
                message: "ring \(label) closes onto the atom that opened it"))
          }
          if mol.bondBetween(prev, other) != nil {
            return .failure(
              SMILESError(
                rule: .ringClosure, column: column(at), atom: prev, element: mol.atoms[prev].symbol,
                message: "ring \(label) duplicates the bond between atoms \(other) and \(prev)"))
          }
          var order: BondOrder
          switch (open.bond, pending) {
          case (let a?, let b?):
            if a.order != b.order {
              return .failure(
                SMILESError(
                  rule: .ringClosure, column: column(at), atom: prev, element: mol.atoms[prev].symbol,
                  message:
                    "ring \(label) bond symbols disagree: '\(Character(Unicode.Scalar(a.symbol)))' "
                    + "at column \(a.column), '\(Character(Unicode.Scalar(b.symbol)))' here"))
            }
            order = a.order
          case (let a?, nil): order = a.order
          case (nil, let b?): order = b.order
          case (nil, nil): order = .single
          }
          order = bondOrder(open.bond ?? pending, mol.atoms[other], mol.atoms[prev])
          mol.addBond(other, prev, order, directional: (open.bond ?? pending)?.isDirectional ?? false)
        } else {
          rings[label] = OpenRing(atom: prev, bond: pending, column: column(at))
        }
        pending = nil
        state = .atom
      case UInt8(ascii: "["):
        switch parseBracket() {
        case .failure(let e): return .failure(e)
        case .success(var atom):
          atom.column = column(at)
          appendAtom(&mol, atom, prev: prev, pending: pending)
        }
        prev = mol.atoms.count - 1
        pending = nil
        state = .atom
      default:
        guard let atom = parseOrganic() else {
          if c == UInt8(ascii: "]") { return syntax(at, "unbalanced ']': no '[' to close") }
          return syntax(at, "unknown symbol \(describe(c))")
        }
        var a = atom
        a.column = column(at)
        appendAtom(&mol, a, prev: prev, pending: pending)
        prev = mol.atoms.count - 1
        pending = nil
        state = .atom
      }
    }

    if partial {
      end = EndState(
        state: state, lastAtom: prev, rings: rings, openBranches: branches.count,
        branchAtoms: branches.map(\.atom))
      return .success(mol)
    }
    switch state {
    case .bond: return syntax(n - 1, "bond at the end of the input")
    case .start: return syntax(n - 1, "'.' at the end of the input")
    case .openBranch, .atom: break
    }
    if let open = branches.last { return syntax(open.column, "unbalanced '(': never closed") }
    if let (label, open) = rings.min(by: { $0.value.column < $1.value.column }).map({ ($0.key, $0.value) }) {
      return .failure(
        SMILESError(
          rule: .ringClosure, column: open.column, atom: open.atom, element: mol.atoms[open.atom].symbol,
          message: "ring \(label) is opened but never closed"))
    }
    return .success(mol)
  }

  func appendAtom(_ mol: inout Molecule, _ atom: Atom, prev: Int, pending: BondToken?) {
    mol.atoms.append(atom)
    let k = mol.atoms.count - 1
    guard prev >= 0 else { return }
    mol.addBond(prev, k, bondOrder(pending, mol.atoms[prev], atom), directional: pending?.isDirectional ?? false)
  }

  /// Unwritten bonds and directional bonds (/ \\) between two aromatic atoms are aromatic,
  /// as in RDKit; other unwritten bonds are single.
  func bondOrder(_ token: BondToken?, _ x: Atom, _ y: Atom) -> BondOrder {
    let directional = token.map { $0.symbol == UInt8(ascii: "/") || $0.symbol == UInt8(ascii: "\\") } ?? true
    if directional && x.aromatic && y.aromatic { return .aromatic }
    return token?.order ?? .single
  }

  @inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }

  /// B C N O P S F Cl Br I and aromatic b c n o p s, outside brackets.
  mutating func parseOrganic() -> Atom? {
    let c = bytes[i]
    let next: UInt8 = i + 1 < bytes.count ? bytes[i + 1] : 0
    var z = 0
    var len = 1
    var aromatic = false
    switch c {
    case UInt8(ascii: "B"):
      if next == UInt8(ascii: "r") { (z, len) = (35, 2) } else { z = 5 }
    case UInt8(ascii: "C"):
      if next == UInt8(ascii: "l") { (z, len) = (17, 2) } else { z = 6 }
    case UInt8(ascii: "N"): z = 7
    case UInt8(ascii: "O"): z = 8
    case UInt8(ascii: "P"): z = 15
    case UInt8(ascii: "S"): z = 16
    case UInt8(ascii: "F"): z = 9
    case UInt8(ascii: "I"): z = 53
    case UInt8(ascii: "b"): (z, aromatic) = (5, true)
    case UInt8(ascii: "c"): (z, aromatic) = (6, true)
    case UInt8(ascii: "n"): (z, aromatic) = (7, true)
    case UInt8(ascii: "o"): (z, aromatic) = (8, true)
    case UInt8(ascii: "p"): (z, aromatic) = (15, true)
    case UInt8(ascii: "s"): (z, aromatic) = (16, true)
    default: return nil
    }
    let symbol = String(decoding: bytes[i..<(i + len)], as: UTF8.self)
    i += len
    return Atom(
      element: z, symbol: symbol, aromatic: aromatic, bracket: false, hydrogens: 0, charge: 0, column: 0)
  }

  /// `[` isotope? symbol chirality? hcount? charge? class? `]`, RDKit's order.
  mutating func parseBracket() -> Result<Atom, SMILESError> {
    let open = i
    let n = bytes.count
    func fail(_ at: Int, _ message: String) -> Result<Atom, SMILESError> {
      .failure(SMILESError(rule: .syntax, column: column(at), message: message))
    }
    func unexpected(_ at: Int) -> Result<Atom, SMILESError> {
      if at >= n { return fail(open, "unbalanced '[': never closed") }
      return fail(at, "unexpected \(describe(bytes[at])) in bracket atom")
    }
    i += 1
    // Isotope: "0" or a number without a leading zero.
    if i < n, isDigit(bytes[i]) {
      let start = i
      while i < n, isDigit(bytes[i]), i - start < 6 { i += 1 }
      if bytes[start] == 48 && i - start > 1 { return fail(start, "isotope with a leading zero") }
      if i < n, isDigit(bytes[i]) { return fail(i, "isotope too large") }
    }
    // Element symbol: two letters before one, as RDKit ([Cs] is caesium, not C + s).
    guard i < n else { return unexpected(i) }
    var z = -1
    var aromatic = false
    var len = 0
    let c0 = bytes[i]
    let c1: UInt8 = i + 1 < n ? bytes[i + 1] : 0
    if c0 >= 65 && c0 <= 90 {
      if c1 >= 97 && c1 <= 122, let zz = Valence.atomicNumber(String(decoding: [c0, c1], as: UTF8.self)) {
        (z, len) = (zz, 2)
      } else if let zz = Valence.atomicNumber(String(decoding: [c0], as: UTF8.self)) {
        (z, len) = (zz, 1)
      }
    } else if c0 >= 97 && c0 <= 122 {
      let two = String(decoding: [c0, c1], as: UTF8.self)
      if let zz = Valence.aromaticBracketSymbols[two] {
        (z, len, aromatic) = (zz, 2, true)
      } else if let zz = Valence.aromaticBracketSymbols[String(decoding: [c0], as: UTF8.self)] {
        (z, len, aromatic) = (zz, 1, true)
      }
    }
    guard z >= 0 else {
      if c0 == UInt8(ascii: "]") { return fail(i, "empty bracket atom '[]'") }
      if (c0 >= 65 && c0 <= 90) || (c0 >= 97 && c0 <= 122) {
        return fail(i, "unknown element in bracket atom")
      }
      return unexpected(i)
    }
    let symbol = String(decoding: bytes[i..<(i + len)], as: UTF8.self)
    i += len
    // Chirality: @, @@, or @TH1/@AL2/@SP3/@TB12/@OH30.
    if i < n, bytes[i] == UInt8(ascii: "@") {
      i += 1
      if i < n, bytes[i] == UInt8(ascii: "@") {
        i += 1
      } else if i + 1 < n {
        let tag = String(decoding: bytes[i..<(i + 2)], as: UTF8.self)
        if ["TH", "AL", "SP", "TB", "OH"].contains(tag) {
          i += 2
          if i < n, isDigit(bytes[i]) { i += 1 }
          if i < n, isDigit(bytes[i]) { i += 1 }
        }
      }
    }
    // Hydrogens.
    var h = 0
    if i < n, bytes[i] == UInt8(ascii: "H") {
      i += 1
      h = 1
      if i < n, isDigit(bytes[i]) {
        h = 0
        let start = i
        while i < n, isDigit(bytes[i]), i - start < 3 {
          h = h * 10 + Int(bytes[i] - 48)
          i += 1
        }
      }
    }
    // Charge: + ++ +n, - -- -n.
    var charge = 0
    if i < n, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
      let sign = bytes[i]
      let s = sign == UInt8(ascii: "+") ? 1 : -1
      i += 1
      if i < n, bytes[i] == sign {
        charge = 2 * s
        i += 1
      } else if i < n, isDigit(bytes[i]) {
        var v = 0
        let start = i
        while i < n, isDigit(bytes[i]), i - start < 3 {
          v = v * 10 + Int(bytes[i] - 48)
          i += 1
        }
        charge = s * v
      } else {
        charge = s
      }
    }
    // Atom class.
    if i < n, bytes[i] == UInt8(ascii: ":") {
      i += 1
      let start = i
      while i < n, isDigit(bytes[i]), i - start < 9 { i += 1 }
      if i == start { return unexpected(i) }
    }
    guard i < n, bytes[i] == UInt8(ascii: "]") else { return unexpected(i) }
    i += 1
    return .success(
      Atom(
        element: z, symbol: symbol, aromatic: aromatic, bracket: true, hydrogens: h, charge: charge,
        column: 0))
  }
}
