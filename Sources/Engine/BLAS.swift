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
