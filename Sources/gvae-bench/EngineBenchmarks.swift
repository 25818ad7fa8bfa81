// Matmul timings (tensor-engine work) and training-step timings (NN work).
//   gvae-bench [--runs N] [--only matmul|zinc|equation|zinc-ar|equation-ar] [--zinc-batch N]
//              [--equation-batch N] [--threads N]
// With `--only` a preset the matmul timings are skipped.
func runEngineBenchmarks(_ arguments: [String]) {
  let only = arguments.firstIndex(of: "--only").flatMap {
    $0 + 1 < arguments.count ? arguments[$0 + 1] : nil
  }
  if only == nil || only == "matmul" { runMatmulBenchmarks() }
  if only != "matmul" { runTrainStepBenchmarks(arguments) }
}
