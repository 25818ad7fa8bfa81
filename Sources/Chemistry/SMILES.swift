// Semantic check of SMILES strings (the ZINC-250k dialect): syntax, ring closures, valences
// with implicit hydrogens, aromaticity (kekulization). The rules follow RDKit's
// `Chem.MolFromSmiles` with default sanitization, so "valid" here means "RDKit parses and
// sanitizes it" (see tools/check_vs_rdkit.py for the measured agreement).

/// Which rule an invalid SMILES string breaks.
public enum SMILESRule: String, Sendable, CaseIterable, Codable {
  /// Unknown symbol, unbalanced parentheses or brackets, misplaced bond, branch or dot, empty input.
  case syntax
  /// A ring-closure digit that is never closed, closes onto its own atom or an existing bond,
  /// or whose two bond symbols disagree.
  case ringClosure
  /// An atom with more bonds (and hydrogens) than its element and charge allow.
  case valence
  /// An aromatic atom outside any ring, or an aromatic system with no Kekulé structure.
  case aromaticity
}

/// Why a SMILES string is invalid, and where.
public struct SMILESError: Error, Equatable, Sendable, CustomStringConvertible {
  public let rule: SMILESRule
  /// 1-based column in the input (characters) of the offending symbol or atom.
  public let column: Int
  /// 0-based index of the atom to blame, in input order, when there is one.
  public let atom: Int?
  /// That atom's element as written ("C", "c", "Cl", "nH" is written "n").
  public let element: String?
  /// One line: what is wrong.
  public let message: String

  public init(rule: SMILESRule, column: Int, atom: Int? = nil, element: String? = nil, message: String) {
    self.rule = rule
    self.column = column
    self.atom = atom
    self.element = element
    self.message = message
  }

  /// `column 7, atom 3 (N): valence: ...`
  public var description: String {
    var s = "column \(column)"
    if let atom { s += ", atom \(atom)" + (element.map { " (\($0))" } ?? "") }
    return s + ": \(rule.rawValue): \(message)"
  }
}

/// Counts for a valid SMILES string.
public struct SMILESSummary: Equatable, Sendable {
  /// Atoms written in the string (hydrogens in brackets such as [nH] are not atoms; [H] is).
  public var atomCount: Int
  public var bondCount: Int
  /// Independent rings (bonds - atoms + fragments), the size of the smallest set of rings.
  public var ringCount: Int
  /// Dot-separated fragments (connected components).
  public var fragmentCount: Int
  public var aromaticAtomCount: Int
  /// Atoms other than hydrogen by element symbol ("C", "N", "Cl"; aromatic c counts as "C").
  public var heavyAtomCounts: [String: Int]

  public var heavyAtomCount: Int { heavyAtomCounts.values.reduce(0, +) }
}

/// The outcome of `SMILES.check`.
public enum SMILESCheck: Equatable, Sendable {
  case valid(SMILESSummary)
  case invalid(SMILESError)

  public var isValid: Bool { if case .valid = self { return true } else { return false } }
  public var error: SMILESError? { if case .invalid(let e) = self { return e } else { return nil } }
  public var summary: SMILESSummary? { if case .valid(let s) = self { return s } else { return nil } }
}

public enum SMILES {
  /// Checks one SMILES string. Leading and trailing whitespace is ignored; anything else
  /// that is not SMILES is a positioned syntax error. Never traps, whatever the input: the
  /// parser, ring search and matching are iterative, so input length does not reach the stack.
  public static func check(_ s: String) -> SMILESCheck {
    var bytes = Array(s.utf8)
    // Trim ASCII whitespace at both ends; columns stay those of the original string.
    var lead = 0
    while lead < bytes.count, isSpace(bytes[lead]) { lead += 1 }
    var end = bytes.count
    while end > lead, isSpace(bytes[end - 1]) { end -= 1 }
    if lead > 0 || end < bytes.count { bytes = Array(bytes[lead..<end]) }
    var mol: Molecule
    var parser = Parser(bytes: bytes, columnOffset: lead)
    switch parser.parse() {
    case .success(let m): mol = m
    case .failure(let e): return .invalid(e)
    }
    if let e = mol.sanitize() { return .invalid(e) }
    return .valid(mol.summary())
  }

  /// Checks many strings; the same as mapping `check`.
  public static func check(_ strings: [String]) -> [SMILESCheck] { strings.map { check($0) } }

  @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
}
