// Owned by the grammar-engine work: parse throughput on the full data sets.
func runParseBenchmarks(_ arguments: [String]) {}
