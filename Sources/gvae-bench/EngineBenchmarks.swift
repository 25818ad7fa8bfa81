// Matmul timings (tensor-engine work) and training-step timings (NN work).
//   gvae-bench [--runs N] [--only zinc|equation] [--zinc-batch N] [--equation-batch N]
// With `--only` the matmul timings are skipped.
func runEngineBenchmarks(_ arguments: [String]) {
  if !arguments.contains("--only") { runMatmulBenchmarks() }
  runTrainStepBenchmarks(arguments)
}
