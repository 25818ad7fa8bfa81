import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The one seam to a BLAS library. Row-major single-precision GEMM:
/// `C = alpha · op(A) · op(B) + beta · C`, with `op(A)` of shape [m, k] and `op(B)` [k, n].
///
/// On first use the seam loads OpenBLAS (or another CBLAS) with `dlopen`, so nothing links
/// against it and the package builds without it. Debian's OpenBLAS picks slow generic
/// kernels on AVX-512 machines unless `OPENBLAS_CORETYPE` is set *before* the library is
/// loaded, so the loader sets it (SkylakeX with AVX-512F, overriding a weaker inherited
/// preset; Haswell with AVX2 when unset). `GVAE_OPENBLAS_CORETYPE` forces a core type. Without a loadable library — or with `GVAE_BLAS=builtin` in the environment —
/// a packed, vectorised single-threaded GEMM in `CKernels` runs instead.
public enum BLAS {
  /// Which implementation `sgemm` uses, e.g.
  /// "OpenBLAS (OPENBLAS_CORETYPE=SkylakeX, 2 threads)" or "built-in GEMM (avx512f)".
  public static var backendDescription: String { backend.description }

  /// Whether a BLAS library was loaded (false: the built-in GEMM runs).
  public static var usesLibrary: Bool { backend.sgemm != nil }

  public static func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    precondition(m >= 0 && n >= 0 && k >= 0, "sgemm sizes m \(m) n \(n) k \(k)")
    if m == 0 || n == 0 { return }
    // Small products stay in float32: packing costs more than the faster multiply saves.
    if bfloat16Products && m * n * k >= 1 << 18
      && sgemmBF16(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a,
        lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    {
      return
    }
    if let f = backend.sgemm, k > 0 {
      f(
        cblasRowMajor, transposeA ? cblasTrans : cblasNoTrans,
        transposeB ? cblasTrans : cblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a,
        Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    } else {
      builtinSgemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
        a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
  }

  /// Mixed precision, off by default (`gvae train --bf16`): `sgemm` products of at least
  /// 2¹⁸ multiply-adds round op(A) and op(B) to bfloat16 and accumulate in float32
  /// (`sgemmBF16`, one thread), on CPUs with AVX512-BF16; elsewhere it changes nothing.
  nonisolated(unsafe) public static var bfloat16Products = false

  /// Whether the CPU has AVX512-BF16, which `sgemmBF16` needs.
  public static var bfloat16Available: Bool { gvae_cpu_has_avx512_bf16() != 0 }

  /// `sgemm` with op(A) and op(B) rounded to bfloat16 (nearest even), float32 accumulation;
  /// false (C untouched) without AVX512-BF16.
  @discardableResult
  public static func sgemmBF16(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) -> Bool {
    gvae_sgemm_bf16(
      transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) != 0
  }

  /// x rounded to bfloat16 and back (what `sgemmBF16` multiplies).
  public static func roundedToBFloat16(_ x: Float) -> Float { gvae_round_bf16(x) }

  /// The fallback GEMM (packed, vectorised, single-threaded C), callable directly for tests.
  public static func builtinSgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    gvae_sgemm(
      transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
  }

  /// Reference GEMM: the test oracle for the fast paths.
  public static func naiveSgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    for i in 0..<m {
      for j in 0..<n {
        var acc: Float = 0
        for p in 0..<k {
          let x = transposeA ? a[p * lda + i] : a[i * lda + p]
          let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
          acc += x * y
        }
        c[i * ldc + j] = alpha * acc + (beta == 0 ? 0 : beta * c[i * ldc + j])
      }
    }
  }

  // MARK: Loading

  typealias CblasSgemm =
    @convention(c) (
      Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
    ) -> Void
  typealias SetNumThreads = @convention(c) (Int32) -> Void

  static let cblasRowMajor: Int32 = 101
  static let cblasNoTrans: Int32 = 111
  static let cblasTrans: Int32 = 112

  struct Backend: @unchecked Sendable {
    var sgemm: CblasSgemm?
    var description: String
    var setThreads: SetNumThreads? = nil
    var threads = 1
  }

  /// Sets the library's thread count (OpenBLAS only; no effect on the single-threaded
  /// built-in GEMM). The default: `GVAE_BLAS_THREADS`, `OPENBLAS_NUM_THREADS`, or every core.
  public static func setThreadCount(_ n: Int) {
    guard let set = backend.setThreads else { return }
    set(Int32(max(1, n)))
    threadCountOverride = max(1, n)
  }

  /// The library's thread count (1 for the built-in GEMM).
  public static var threadCount: Int {
    backend.setThreads == nil ? 1 : (threadCountOverride ?? backend.threads)
  }

  nonisolated(unsafe) static var threadCountOverride: Int? = nil

  /// Loaded once, thread-safely (Swift initialises global and static `let`s exactly once).
  static let backend: Backend = loadBackend()

  static let candidateLibraries = [
    "libopenblas.so.0",
    "libopenblas.so",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "libopenblasp-r0.so",
    "libcblas.so.3",
    "libblas.so.3",
    "/usr/local/opt/openblas/lib/libopenblas.dylib",
    "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  ]

  static func loadBackend() -> Backend {
    let builtin = Backend(
      sgemm: nil, description: "built-in GEMM (\(String(cString: gvae_kernel_isa())), 1 thread)")
    if let choice = getenv("GVAE_BLAS").map({ String(cString: $0) }), choice == "builtin" {
      return builtin
    }
    // Must happen before dlopen: OpenBLAS reads it once while loading. The best kernel for
    // this CPU wins over an inherited weaker preset (machines here ship OPENBLAS_CORETYPE=
    // Haswell, half speed on AVX-512); GVAE_OPENBLAS_CORETYPE forces a choice.
    if let forced = getenv("GVAE_OPENBLAS_CORETYPE") {
      setenv("OPENBLAS_CORETYPE", forced, 1)
    } else if gvae_cpu_has_avx512f() != 0 {
      let current = getenv("OPENBLAS_CORETYPE").map { String(cString: $0).lowercased() }
      let avx512Kernels = ["skylakex", "cooperlake", "sapphirerapids"]
      if current == nil || !avx512Kernels.contains(current!) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
      }
    } else if gvae_cpu_has_avx2_fma() != 0, getenv("OPENBLAS_CORETYPE") == nil {
      setenv("OPENBLAS_CORETYPE", "Haswell", 0)
    }
    for name in candidateLibraries {
      guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
      guard let symbol = dlsym(handle, "cblas_sgemm") else {
        dlclose(handle)
        continue
      }
      let sgemm = unsafeBitCast(symbol, to: CblasSgemm.self)
      let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
      // GVAE_BLAS_THREADS, then the user's OPENBLAS_NUM_THREADS, else every core.
      let requested = ["GVAE_BLAS_THREADS", "OPENBLAS_NUM_THREADS"]
        .compactMap { (name: String) in getenv(name).flatMap { Int(String(cString: $0)) } }
        .first { $0 > 0 }
      let threads = requested ?? cores
      var what = name.contains("openblas") ? "OpenBLAS" : "CBLAS \(name)"
      var details: [String] = []
      var setThreads: SetNumThreads? = nil
      if let core = getenv("OPENBLAS_CORETYPE") {
        details.append("OPENBLAS_CORETYPE=\(String(cString: core))")
      }
      if let set = dlsym(handle, "openblas_set_num_threads") {
        what = "OpenBLAS"
        setThreads = unsafeBitCast(set, to: SetNumThreads.self)
        setThreads?(Int32(threads))
        details.append("\(threads) threads")
      }
      return Backend(
        sgemm: sgemm,
        description: details.isEmpty ? what : "\(what) (\(details.joined(separator: ", ")))",
        setThreads: setThreads, threads: threads)
    }
    return builtin
  }
}

// MARK: Double precision: GEMM, triangular solve, Cholesky (for Gaussian processes)

/// Double-precision linear algebra for kernel matrices, where float32 Cholesky factors fail
/// on nearly singular matrices. Row-major throughout. Symbols come from the library that
/// `sgemm` uses (`cblas_dgemm`, `cblas_dtrsm`, LAPACK `dpotrf_`); without it, or with
/// `GVAE_BLAS=builtin`, straightforward Swift loops run instead.
extension BLAS {
  /// Which implementation the double-precision routines use.
  public static var doubleBackendDescription: String {
    double.dgemm == nil ? "built-in (Swift loops)" : "library (cblas_dgemm, cblas_dtrsm, dpotrf_)"
  }

  /// `C = alpha · op(A) · op(B) + beta · C`, `op(A)` [m, k], `op(B)` [k, n].
  public static func dgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    precondition(m >= 0 && n >= 0 && k >= 0, "dgemm sizes m \(m) n \(n) k \(k)")
    if m == 0 || n == 0 { return }
    if let f = double.dgemm, k > 0 {
      f(
        cblasRowMajor, transposeA ? cblasTrans : cblasNoTrans,
        transposeB ? cblasTrans : cblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a,
        Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    } else {
      builtinDgemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
        a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
  }

  /// Solves with a lower-triangular `L` [s, s] (non-unit diagonal), overwriting `B` [m, n]:
  /// left: `op(L) · X = alpha · B` (s = m); right: `X · op(L) = alpha · B` (s = n);
  /// `op(L)` is `Lᵀ` when `transpose`.
  public static func dtrsmLower(
    left: Bool, transpose: Bool, m: Int, n: Int, alpha: Double,
    l: UnsafePointer<Double>, ldl: Int, b: UnsafeMutablePointer<Double>, ldb: Int
  ) {
    precondition(m >= 0 && n >= 0, "dtrsm sizes m \(m) n \(n)")
    if m == 0 || n == 0 { return }
    if let f = double.dtrsm {
      // CblasLeft 141 / CblasRight 142, CblasLower 122, CblasNonUnit 131.
      f(
        cblasRowMajor, left ? 141 : 142, 122, transpose ? cblasTrans : cblasNoTrans, 131,
        Int32(m), Int32(n), alpha, l, Int32(ldl), b, Int32(ldb))
    } else {
      builtinDtrsmLower(
        left: left, transpose: transpose, m: m, n: n, alpha: alpha, l: l, ldl: ldl, b: b,
        ldb: ldb)
    }
  }

  /// Cholesky factor in place: the lower triangle of the symmetric `A` [n, n] becomes `L`
  /// with `A = L·Lᵀ` (the strict upper triangle is left as it was).
  /// - Returns: 0 on success; `j > 0` when the leading minor of order `j` is not positive
  ///   definite (as LAPACK's `info`).
  public static func dpotrfLower(n: Int, a: UnsafeMutablePointer<Double>, lda: Int) -> Int {
    precondition(n >= 0 && lda >= max(1, n), "dpotrf n \(n) lda \(lda)")
    if n == 0 { return 0 }
    if let f = double.dpotrf {
      // Row-major lower = column-major upper of the same (symmetric) array.
      var uplo = CChar(UInt8(ascii: "U"))
      var nn = Int32(n)
      var ld = Int32(lda)
      var info: Int32 = 0
      f(&uplo, &nn, a, &ld, &info)
      return Int(info)
    }
    return builtinDpotrfLower(n: n, a: a, lda: lda)
  }

  /// The fallback GEMM in double precision (also the test reference).
  public static func builtinDgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    for i in 0..<m {
      let row = c + i * ldc
      for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
      for p in 0..<k {
        let x = alpha * (transposeA ? a[p * lda + i] : a[i * lda + p])
        if x == 0 { continue }
        if transposeB {
          for j in 0..<n { row[j] += x * b[j * ldb + p] }
        } else {
          let brow = b + p * ldb
          for j in 0..<n { row[j] += x * brow[j] }
        }
      }
    }
  }

  /// The fallback triangular solve (also the test reference).
  public static func builtinDtrsmLower(
    left: Bool, transpose: Bool, m: Int, n: Int, alpha: Double,
    l: UnsafePointer<Double>, ldl: Int, b: UnsafeMutablePointer<Double>, ldb: Int
  ) {
    @inline(__always) func op(_ i: Int, _ j: Int) -> Double {
      transpose ? l[j * ldl + i] : l[i * ldl + j]
    }
    if alpha != 1 { for i in 0..<m { for j in 0..<n { b[i * ldb + j] *= alpha } } }
    if left {
      // op(L) lower: forward substitution over rows; upper (Lᵀ): backward.
      let rows = transpose ? Array((0..<m).reversed()) : Array(0..<m)
      for (t, i) in rows.enumerated() {
        for r in rows[..<t] {
          let f = op(i, r)
          if f != 0 { for j in 0..<n { b[i * ldb + j] -= f * b[r * ldb + j] } }
        }
        let d = op(i, i)
        for j in 0..<n { b[i * ldb + j] /= d }
      }
    } else {
      // X · op(L) = B: column j of X depends on columns after it (lower) or before (upper).
      let cols = transpose ? Array(0..<n) : Array((0..<n).reversed())
      for (t, j) in cols.enumerated() {
        for r in cols[..<t] {
          let f = op(r, j)
          if f != 0 { for i in 0..<m { b[i * ldb + j] -= b[i * ldb + r] * f } }
        }
        let d = op(j, j)
        for i in 0..<m { b[i * ldb + j] /= d }
      }
    }
  }

  /// The fallback Cholesky factorisation (also the test reference).
  public static func builtinDpotrfLower(
    n: Int, a: UnsafeMutablePointer<Double>, lda: Int
  ) -> Int {
    for j in 0..<n {
      var d = a[j * lda + j]
      for p in 0..<j { d -= a[j * lda + p] * a[j * lda + p] }
      guard d > 0, d.isFinite else { return j + 1 }
      let ljj = d.squareRoot()
      a[j * lda + j] = ljj
      for i in (j + 1)..<max(j + 1, n) {
        var s = a[i * lda + j]
        for p in 0..<j { s -= a[i * lda + p] * a[j * lda + p] }
        a[i * lda + j] = s / ljj
      }
    }
    return 0
  }

  typealias CblasDgemm =
    @convention(c) (
      Int32, Int32, Int32, Int32, Int32, Int32, Double, UnsafePointer<Double>?, Int32,
      UnsafePointer<Double>?, Int32, Double, UnsafeMutablePointer<Double>?, Int32
    ) -> Void
  typealias CblasDtrsm =
    @convention(c) (
      Int32, Int32, Int32, Int32, Int32, Int32, Int32, Double, UnsafePointer<Double>?, Int32,
      UnsafeMutablePointer<Double>?, Int32
    ) -> Void
  typealias LapackDpotrf =
    @convention(c) (
      UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Double>?,
      UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?
    ) -> Void

  struct DoubleBackend: @unchecked Sendable {
    var dgemm: CblasDgemm? = nil
    var dtrsm: CblasDtrsm? = nil
    var dpotrf: LapackDpotrf? = nil
  }

  /// Resolved from the library `sgemm` loaded (dlopen of an already loaded library returns
  /// its handle), all three or none, so one run never mixes implementations.
  static let double: DoubleBackend = {
    guard usesLibrary else { return DoubleBackend() }
    for name in candidateLibraries {
      guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
      guard dlsym(handle, "cblas_sgemm") != nil,
        let g = dlsym(handle, "cblas_dgemm"), let t = dlsym(handle, "cblas_dtrsm"),
        let p = dlsym(handle, "dpotrf_")
      else {
        dlclose(handle)
        continue
      }
      return DoubleBackend(
        dgemm: unsafeBitCast(g, to: CblasDgemm.self), dtrsm: unsafeBitCast(t, to: CblasDtrsm.self),
        dpotrf: unsafeBitCast(p, to: LapackDpotrf.self))
    }
    return DoubleBackend()
  }()
}
