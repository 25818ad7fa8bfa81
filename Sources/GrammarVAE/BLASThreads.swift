// Local helper: Engine's BLAS loader sets OpenBLAS to one thread per CPU, ignoring
// OPENBLAS_NUM_THREADS. On a shared 2-core machine, spinning BLAS threads of several
// processes spend a quarter of the time in sched_yield (perf), so training lets the user
// choose. Remove once Engine honours the environment variable.
import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

public enum BLASThreads {
  /// Sets OpenBLAS's thread count (after Engine has loaded it); returns whether it could.
  @discardableResult
  public static func set(_ threads: Int) -> Bool {
    // Make sure Engine has loaded its library.
    var a: Float = 1
    var b: Float = 1
    var c: Float = 0
    BLAS.sgemm(
      transposeA: false, transposeB: false, m: 1, n: 1, k: 1, alpha: 1, a: &a, lda: 1, b: &b,
      ldb: 1, beta: 0, c: &c, ldc: 1)
    for name in [
      "libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so",
      "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    ] {
      guard let h = dlopen(name, RTLD_NOW | RTLD_NOLOAD) else { continue }
      defer { dlclose(h) }
      if let f = dlsym(h, "openblas_set_num_threads") {
        typealias SetThreads = @convention(c) (Int32) -> Void
        unsafeBitCast(f, to: SetThreads.self)(Int32(max(1, threads)))
        return true
      }
    }
    return false
  }

  /// Applies `OPENBLAS_NUM_THREADS` from the environment, when set.
  public static func applyEnvironment() {
    if let v = getenv("OPENBLAS_NUM_THREADS"), let n = Int(String(cString: v)), n > 0 { set(n) }
  }
}
