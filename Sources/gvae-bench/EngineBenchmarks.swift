// Owned by the tensor-engine work: matmul and training-step timings.
func runEngineBenchmarks(_ arguments: [String]) {}
