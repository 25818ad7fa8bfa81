import Engine
import LatentOptimization
import Testing

@Suite struct LinearAlgebraTests {
  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func dgemmMatchesReference(transposeA: Bool, transposeB: Bool) {
    var rng = SeededRandom(seed: 1)
    let (m, n, k) = (7, 5, 9)
    let a = randomMatrix(transposeA ? k : m, transposeA ? m : k, rng: &rng)
    let b = randomMatrix(transposeB ? n : k, transposeB ? k : n, rng: &rng)
    let c = matmul(a, b, transposeA: transposeA, transposeB: transposeB)
    for i in 0..<m {
      for j in 0..<n {
        var s = 0.0
        for p in 0..<k { s += (transposeA ? a[p, i] : a[i, p]) * (transposeB ? b[j, p] : b[p, j]) }
        #expect(abs(c[i, j] - s) < 1e-12, "(\(i), \(j))")
      }
    }
  }

  func spd(_ n: Int, rng: inout SeededRandom) -> Matrix {
    let r = randomMatrix(n, n, rng: &rng)
    var a = matmul(r, r, transposeB: true)
    for i in 0..<n { a[i, i] += 0.5 }
    return a
  }

  @Test func choleskyReconstructsAndMatchesBuiltin() throws {
    var rng = SeededRandom(seed: 2)
    let a = spd(40, rng: &rng)
    let c = try Cholesky(a)
    #expect(c.jitter == 0)
    let back = matmul(c.factor, c.factor, transposeB: true)
    #expect(maxAbsDifference(back.storage, a.storage) < 1e-10)
    var builtin = a
    let info = builtin.storage.withUnsafeMutableBufferPointer {
      BLAS.builtinDpotrfLower(n: 40, a: $0.baseAddress!, lda: 40)
    }
    #expect(info == 0)
    for i in 0..<40 { for j in 0...i { #expect(abs(builtin[i, j] - c.factor[i, j]) < 1e-10) } }
  }

  @Test(arguments: [(true, false), (true, true), (false, false), (false, true)])
  func triangularSolvesMatchBuiltin(left: Bool, transpose: Bool) throws {
    var rng = SeededRandom(seed: 3)
    let l = try Cholesky(spd(6, rng: &rng)).factor
    let b = randomMatrix(left ? 6 : 4, left ? 4 : 6, rng: &rng)
    var x1 = b
    var x2 = b
    l.storage.withUnsafeBufferPointer { pl in
      x1.storage.withUnsafeMutableBufferPointer { px in
        BLAS.dtrsmLower(
          left: left, transpose: transpose, m: b.rows, n: b.columns, alpha: 2,
          l: pl.baseAddress!, ldl: 6, b: px.baseAddress!, ldb: b.columns)
      }
      x2.storage.withUnsafeMutableBufferPointer { px in
        BLAS.builtinDtrsmLower(
          left: left, transpose: transpose, m: b.rows, n: b.columns, alpha: 2,
          l: pl.baseAddress!, ldl: 6, b: px.baseAddress!, ldb: b.columns)
      }
    }
    #expect(maxAbsDifference(x1.storage, x2.storage) < 1e-10)
    // Residual: op(L)·X = 2B or X·op(L) = 2B.
    let op = transpose ? l.transposed() : l
    let back = left ? matmul(op, x1) : matmul(x1, op)
    #expect(maxAbsDifference(back.storage, b.storage.map { 2 * $0 }) < 1e-10)
  }

  @Test func indefiniteMatrixIsAnErrorAndSingularGetsJitter() throws {
    let bad = Matrix(rows: 2, columns: 2, storage: [1, 2, 2, 1])
    #expect(throws: LinearAlgebraError.self) { try Cholesky(bad) }
    // Two identical kernel rows: singular, factorised with a small jitter.
    let singular = Matrix(rows: 2, columns: 2, storage: [1, 1, 1, 1])
    let c = try Cholesky(singular)
    #expect(c.jitter > 0 && c.jitter <= 1e-2)
    let nan = Matrix(rows: 1, columns: 1, storage: [.nan])
    #expect(throws: LinearAlgebraError.nonFinite("the matrix to factorise")) { try Cholesky(nan) }
  }

  @Test func lbfgsFindsRosenbrockMinimumAndRespectsBox() {
    let rosen: ([Double]) -> (Double, [Double]) = { v in
      let (x, y) = (v[0], v[1])
      return (
        (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x),
        [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]
      )
    }
    let (x, f) = minimizeLBFGS(rosen, from: [-1.2, 1], iterations: 500)
    #expect(f < 1e-10)
    #expect(abs(x[0] - 1) < 1e-4 && abs(x[1] - 1) < 1e-4)
    // Box x ≤ 0.5: the constrained minimum is on the bound, at (0.5, 0.25).
    let (xb, _) = minimizeLBFGS(
      rosen, from: [-1.2, 1], lower: [-2, -2], upper: [0.5, 2], iterations: 500)
    #expect(abs(xb[0] - 0.5) < 1e-6 && abs(xb[1] - 0.25) < 1e-3, "\(xb)")
  }
}
