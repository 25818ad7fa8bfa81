// gvae-bench: prints one JSON object per line per measurement.
//   gvae-bench                      engine benchmarks (matmul, training steps)
//   gvae-bench parse [--zinc PATH] [--equations PATH] [--runs N]
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "parse":
  runParseBenchmarks(Array(arguments.dropFirst()))
case nil:
  runEngineBenchmarks([])
default:
  runEngineBenchmarks(arguments)
}
