import Engine

/// Matrix-multiply throughput through the BLAS seam, one JSON line each:
///   matmul-1024  [1024, 1024] · [1024, 1024]
///   matmul-gru   [100, 500] · [500, 1500]  (a GRU gate product at batch 100)
/// Set `GVAE_BLAS=builtin` to time the built-in GEMM instead of OpenBLAS.
func runMatmulBenchmarks() {
  let cases: [(name: String, m: Int, k: Int, n: Int, runs: Int)] = [
    ("matmul-1024", 1024, 1024, 1024, 11),
    ("matmul-gru", 100, 500, 1500, 21),
  ]
  for c in cases {
    var rng = SeededRandom(seed: 1)
    let a = Tensor(randomNormal: [c.m, c.k], rng: &rng)
    let b = Tensor(randomNormal: [c.k, c.n], rng: &rng)
    var sink: Float = 0
    let seconds = medianSeconds(runs: c.runs, warmup: 2) {
      sink += matmulForward(a, b).storage[0]
    }
    let flops = 2.0 * Double(c.m) * Double(c.n) * Double(c.k)
    report(
      c.name, medianSeconds: seconds,
      [
        "gflops": (flops / seconds / 1e9 * 10).rounded() / 10,
        "backend": BLAS.backendDescription,
        "shape": "\(c.m)x\(c.k)x\(c.n)",
        "result_finite": sink.isFinite,
      ])
  }
}
