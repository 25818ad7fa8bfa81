// Matmul timings (tensor-engine work) and training-step timings (NN work).
//   gvae-bench [--runs N] [--only matmul|zinc|equation|zinc-ar|equation-ar] [--zinc-batch N]
//              [--equation-batch N] [--threads N]
// With `--only` a preset the matmul timings are skipped.
func runEngineBenchmarks(_ options: BenchOptions) {
  let only = options["--only"]
  if only == nil || only == "matmul" { runMatmulBenchmarks() }
  if only != "matmul" { runTrainStepBenchmarks(options) }
}
