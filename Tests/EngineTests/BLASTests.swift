import Engine
import Testing

struct GemmCase: CustomTestStringConvertible, Sendable {
  let m, n, k: Int
  let transposeA, transposeB: Bool
  let alpha, beta: Float
  var testDescription: String {
    "\(m)x\(n)x\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N") α\(alpha) β\(beta)"
  }
}

let gemmCases: [GemmCase] = {
  var cases: [GemmCase] = []
  let shapes = [(1, 1, 1), (3, 5, 7), (17, 13, 33), (7, 1, 300), (64, 65, 31), (130, 37, 260)]
  for (m, n, k) in shapes {
    for tA in [false, true] {
      for tB in [false, true] {
        cases.append(GemmCase(m: m, n: n, k: k, transposeA: tA, transposeB: tB, alpha: 1, beta: 0))
      }
    }
  }
  cases.append(
    GemmCase(m: 9, n: 11, k: 5, transposeA: false, transposeB: true, alpha: 0.5, beta: 1.5))
  cases.append(
    GemmCase(m: 33, n: 17, k: 300, transposeA: true, transposeB: false, alpha: -2, beta: 1))
  return cases
}()

/// Runs `gemm` with padded leading dimensions (lda/ldb/ldc larger than the rows) and
/// compares with `BLAS.naiveSgemm`; returns the worst error relative to √k-scaled size.
func compareWithNaive(
  _ c: GemmCase, inputs: (Float) -> Float = { $0 },
  _ gemm: (
    Bool, Bool, Int, Int, Int, Float, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, Float,
    UnsafeMutablePointer<Float>, Int
  ) -> Void
) -> Float {
  var rng = SeededRandom(seed: UInt64(c.m * 1000 + c.n * 10 + c.k))
  let aRows = c.transposeA ? c.k : c.m
  let aCols = c.transposeA ? c.m : c.k
  let bRows = c.transposeB ? c.n : c.k
  let bCols = c.transposeB ? c.k : c.n
  let lda = aCols + 3
  let ldb = bCols + 2
  let ldc = c.n + 1
  let a = Tensor(randomNormal: [aRows * lda], rng: &rng).storage.map(inputs)
  let b = Tensor(randomNormal: [bRows * ldb], rng: &rng).storage.map(inputs)
  let c0 = Tensor(randomNormal: [c.m * ldc], rng: &rng).storage
  var expected = c0
  var actual = c0
  a.withUnsafeBufferPointer { pa in
    b.withUnsafeBufferPointer { pb in
      expected.withUnsafeMutableBufferPointer { pc in
        BLAS.naiveSgemm(
          transposeA: c.transposeA, transposeB: c.transposeB, m: c.m, n: c.n, k: c.k,
          alpha: c.alpha, a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
          beta: c.beta, c: pc.baseAddress!, ldc: ldc)
      }
      actual.withUnsafeMutableBufferPointer { pc in
        gemm(
          c.transposeA, c.transposeB, c.m, c.n, c.k, c.alpha, pa.baseAddress!, lda,
          pb.baseAddress!, ldb, c.beta, pc.baseAddress!, ldc)
      }
    }
  }
  var worst: Float = 0
  for i in 0..<c.m {
    for j in 0..<ldc {
      let e = expected[i * ldc + j]
      let x = actual[i * ldc + j]
      if j >= c.n {
        // Padding between rows must be left alone.
        if x != c0[i * ldc + j] { return .infinity }
        continue
      }
      worst = max(worst, abs(e - x) / max(1, Float(c.k).squareRoot()))
    }
  }
  return worst
}

@Suite struct BLASTests {
  @Test(arguments: gemmCases)
  func seamMatchesNaive(_ c: GemmCase) {
    let err = compareWithNaive(c) {
      BLAS.sgemm(
        transposeA: $0, transposeB: $1, m: $2, n: $3, k: $4, alpha: $5, a: $6, lda: $7, b: $8,
        ldb: $9, beta: $10, c: $11, ldc: $12)
    }
    #expect(err < 1e-4, "\(c.testDescription) via \(BLAS.backendDescription): error \(err)")
  }

  @Test(arguments: gemmCases)
  func builtinMatchesNaive(_ c: GemmCase) {
    let err = compareWithNaive(c) {
      BLAS.builtinSgemm(
        transposeA: $0, transposeB: $1, m: $2, n: $3, k: $4, alpha: $5, a: $6, lda: $7, b: $8,
        ldb: $9, beta: $10, c: $11, ldc: $12)
    }
    #expect(err < 1e-4, "\(c.testDescription) built-in: error \(err)")
  }

  @Test func builtinIgnoresNaNInOutputWhenBetaIsZero() {
    let a: [Float] = [1, 2, 3, 4]
    let b: [Float] = [1, 0, 0, 1]
    var c = [Float](repeating: .nan, count: 4)
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          BLAS.builtinSgemm(
            transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 1,
            a: pa.baseAddress!, lda: 2, b: pb.baseAddress!, ldb: 2, beta: 0, c: pc.baseAddress!,
            ldc: 2)
        }
      }
    }
    #expect(c == [1, 2, 3, 4])
  }

  @Test func backendIsDescribed() {
    let d = BLAS.backendDescription
    #expect(!d.isEmpty)
    if BLAS.usesLibrary {
      #expect(d.contains("BLAS"))
    } else {
      #expect(d.hasPrefix("built-in GEMM"))
    }
  }

  @Test func matmulOfEmptyInnerDimensionIsZero() {
    let tape = Tape(recording: false)
    let y = matmul(tape.constant(Tensor(zeros: [2, 0])), tape.constant(Tensor(zeros: [0, 3])))
    #expect(y.value == Tensor(zeros: [2, 3]))
  }
}

/// The mixed-precision GEMM: on bfloat16-representable inputs it must equal the float32
/// product up to accumulation order (so a packing or layout slip shows as an O(1) error);
/// on other inputs, what it multiplies is the nearest-even rounding.
@Suite struct BFloat16GEMMTests {
  static let cases: [GemmCase] =
    gemmCases + [
      GemmCase(m: 100, n: 150, k: 501, transposeA: false, transposeB: true, alpha: 1, beta: 0),
      GemmCase(m: 130, n: 1600, k: 70, transposeA: false, transposeB: false, alpha: 0.5, beta: 2),
      GemmCase(m: 257, n: 45, k: 600, transposeA: true, transposeB: false, alpha: 1, beta: 1),
      GemmCase(m: 31, n: 33, k: 513, transposeA: true, transposeB: true, alpha: -1, beta: 0),
    ]

  @Test(arguments: cases)
  func matchesFloat32OnRepresentableInputs(_ c: GemmCase) {
    var ran = false
    let err = compareWithNaive(c, inputs: BLAS.roundedToBFloat16) {
      ran = BLAS.sgemmBF16(
        transposeA: $0, transposeB: $1, m: $2, n: $3, k: $4, alpha: $5, a: $6, lda: $7, b: $8,
        ldb: $9, beta: $10, c: $11, ldc: $12)
    }
    #expect(ran == BLAS.bfloat16Available)
    if ran { #expect(err < 1e-4, "\(c.testDescription) bfloat16: error \(err)") }
  }

  @Test func roundingIsNearestEven() {
    let ulp: Float = 1.0 / 128  // bfloat16 spacing in [1, 2)
    #expect(BLAS.roundedToBFloat16(1 + ulp / 2) == 1)  // tie to even
    #expect(BLAS.roundedToBFloat16(1 + 3 * ulp / 2) == 1 + 2 * ulp)  // tie to even
    #expect(BLAS.roundedToBFloat16(1 + ulp / 2 + ulp / 64) == 1 + ulp)
    #expect(BLAS.roundedToBFloat16(-3.0e38) == -.infinity || BLAS.roundedToBFloat16(-3.0e38) <= -3.0e38)
    #expect(BLAS.roundedToBFloat16(.infinity) == .infinity)
    #expect(BLAS.roundedToBFloat16(.nan).isNaN)
    #expect(BLAS.roundedToBFloat16(Float(bitPattern: 0x7F80_0001)).isNaN)  // payload only in the dropped bits
  }
}
