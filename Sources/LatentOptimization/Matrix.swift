// Dense row-major double matrices and the few factorisations the Gaussian processes need.
import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A dense row-major matrix of doubles.
public struct Matrix: Sendable, Equatable, Codable {
  public var rows: Int
  public var columns: Int
  public var storage: [Double]  // [rows, columns]

  public init(rows: Int, columns: Int, storage: [Double]) {
    precondition(storage.count == rows * columns, "storage \(storage.count) for \(rows)x\(columns)")
    self.rows = rows
    self.columns = columns
    self.storage = storage
  }

  public init(rows: Int, columns: Int, repeating value: Double = 0) {
    self.init(
      rows: rows, columns: columns, storage: [Double](repeating: value, count: rows * columns))
  }

  /// Rows of equal length; an empty list is a 0 × `columns` matrix.
  public init(rowVectors: [[Double]], columns: Int? = nil) {
    let c = rowVectors.first?.count ?? columns ?? 0
    precondition(rowVectors.allSatisfy { $0.count == c }, "ragged rows")
    self.init(rows: rowVectors.count, columns: c, storage: Array(rowVectors.joined()))
  }

  public static func identity(_ n: Int) -> Matrix {
    var m = Matrix(rows: n, columns: n)
    for i in 0..<n { m.storage[i * n + i] = 1 }
    return m
  }

  public subscript(i: Int, j: Int) -> Double {
    get { storage[i * columns + j] }
    set { storage[i * columns + j] = newValue }
  }

  public func row(_ i: Int) -> [Double] { Array(storage[(i * columns)..<((i + 1) * columns)]) }

  public var rowVectors: [[Double]] { (0..<rows).map(row) }

  /// The rows at `indices`, in that order.
  public func selecting(rows indices: some Collection<Int>) -> Matrix {
    var out: [Double] = []
    out.reserveCapacity(indices.count * columns)
    for i in indices { out += storage[(i * columns)..<((i + 1) * columns)] }
    return Matrix(rows: indices.count, columns: columns, storage: out)
  }

  public func transposed() -> Matrix {
    var t = Matrix(rows: columns, columns: rows)
    for i in 0..<rows {
      for j in 0..<columns { t.storage[j * rows + i] = storage[i * columns + j] }
    }
    return t
  }

  public mutating func appendRow(_ r: [Double]) {
    precondition(r.count == columns || rows == 0, "row of \(r.count) for \(columns) columns")
    if rows == 0 { columns = r.count }
    storage += r
    rows += 1
  }
}

/// `op(A) · op(B)` through the BLAS seam.
public func matmul(_ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false)
  -> Matrix
{
  let m = transposeA ? a.columns : a.rows
  let k = transposeA ? a.rows : a.columns
  let k2 = transposeB ? b.columns : b.rows
  let n = transposeB ? b.rows : b.columns
  precondition(k == k2, "matmul inner sizes \(k) and \(k2)")
  var c = Matrix(rows: m, columns: n)
  a.storage.withUnsafeBufferPointer { pa in
    b.storage.withUnsafeBufferPointer { pb in
      c.storage.withUnsafeMutableBufferPointer { pc in
        BLAS.dgemm(
          transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
          a: pa.baseAddress!, lda: max(1, a.columns), b: pb.baseAddress!, ldb: max(1, b.columns),
          beta: 0, c: pc.baseAddress!, ldc: max(1, n))
      }
    }
  }
  return c
}

/// `A · v`.
public func matvec(_ a: Matrix, _ v: [Double], transpose: Bool = false) -> [Double] {
  matmul(a, Matrix(rows: v.count, columns: 1, storage: v), transposeA: transpose).storage
}

public func dot(_ a: [Double], _ b: [Double]) -> Double {
  precondition(a.count == b.count, "dot sizes \(a.count) and \(b.count)")
  var s = 0.0
  for i in a.indices { s += a[i] * b[i] }
  return s
}

/// Why a kernel matrix could not be factorised.
public enum LinearAlgebraError: Error, Equatable, CustomStringConvertible {
  case notPositiveDefinite(order: Int, size: Int)
  case nonFinite(String)

  public var description: String {
    switch self {
    case .notPositiveDefinite(let j, let n):
      return "matrix of size \(n) is not positive definite (leading minor \(j)) even with jitter"
    case .nonFinite(let what): return "non-finite values in \(what)"
    }
  }
}

/// A lower Cholesky factor `L` with `A + jitter·I = L·Lᵀ`.
public struct Cholesky: Sendable {
  public var factor: Matrix  // [n, n], lower triangle; strict upper zero
  /// The diagonal jitter that was needed (0 when none).
  public var jitter: Double

  public var size: Int { factor.rows }

  /// Factorises a symmetric matrix, adding jitter `1e-10·mean(diag)`, ×10 each time, up to
  /// `1e-2·mean(diag)`, when the plain factorisation fails (rounding makes kernel matrices of
  /// near-duplicate points indefinite).
  public init(_ a: Matrix, initialJitter: Double = 0) throws(LinearAlgebraError) {
    precondition(a.rows == a.columns, "Cholesky of \(a.rows)x\(a.columns)")
    let n = a.rows
    guard a.storage.allSatisfy(\.isFinite) else { throw .nonFinite("the matrix to factorise") }
    var meanDiagonal = 0.0
    for i in 0..<n { meanDiagonal += a[i, i] }
    meanDiagonal = n > 0 ? max(meanDiagonal / Double(n), 1e-300) : 1
    var jitter = initialJitter
    while true {
      var m = a
      if jitter > 0 { for i in 0..<n { m.storage[i * n + i] += jitter } }
      let info = m.storage.withUnsafeMutableBufferPointer {
        BLAS.dpotrfLower(n: n, a: $0.baseAddress!, lda: max(1, n))
      }
      if info == 0 {
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { m.storage[i * n + j] = 0 } }
        factor = m
        self.jitter = jitter
        return
      }
      let next = jitter == 0 ? 1e-10 * meanDiagonal : jitter * 10
      guard next <= 1e-2 * meanDiagonal else { throw .notPositiveDefinite(order: info, size: n) }
      jitter = next
    }
  }

  /// `L⁻¹ B` (or `L⁻ᵀ B` when `transpose`), B [n, k].
  public func solveLower(_ b: Matrix, transpose: Bool = false) -> Matrix {
    precondition(b.rows == size, "solve with \(b.rows) rows for size \(size)")
    var x = b
    factor.storage.withUnsafeBufferPointer { pl in
      x.storage.withUnsafeMutableBufferPointer { px in
        BLAS.dtrsmLower(
          left: true, transpose: transpose, m: b.rows, n: b.columns, alpha: 1,
          l: pl.baseAddress!, ldl: max(1, size), b: px.baseAddress!, ldb: max(1, b.columns))
      }
    }
    return x
  }

  public func solveLower(_ v: [Double], transpose: Bool = false) -> [Double] {
    solveLower(Matrix(rows: v.count, columns: 1, storage: v), transpose: transpose).storage
  }

  /// `A⁻¹ B`.
  public func solve(_ b: Matrix) -> Matrix { solveLower(solveLower(b), transpose: true) }

  public func solve(_ v: [Double]) -> [Double] { solveLower(solveLower(v), transpose: true) }

  /// `A⁻¹`.
  public func inverse() -> Matrix { solve(Matrix.identity(size)) }

  /// `log det A = 2 Σ log Lᵢᵢ`.
  public var logDeterminant: Double {
    var s = 0.0
    for i in 0..<size { s += 2 * log(factor[i, i]) }
    return s
  }
}
