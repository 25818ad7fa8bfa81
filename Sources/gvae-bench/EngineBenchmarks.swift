// Matmul timings (tensor-engine work) and training-step timings (NN work).
//   gvae-bench [--runs N] [--only zinc|equation] [--zinc-batch N] [--equation-batch N]
func runEngineBenchmarks(_ arguments: [String]) {
  // TODO: enable once MatmulBenchmarks.swift lands from the engine branch.
  // runMatmulBenchmarks()
  runTrainStepBenchmarks(arguments)
}
