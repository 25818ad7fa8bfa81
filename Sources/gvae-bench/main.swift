// gvae-bench: prints one JSON object per line per measurement.
//   gvae-bench [--runs N] [--only matmul|PRESET] [--zinc-batch N] [--equation-batch N]
//              [--threads N] [--bf16 1] engine benchmarks (matmul, training steps; --bf16 1:
//                                       large products in bfloat16, as `gvae train --bf16`)
//   gvae-bench parse [--zinc PATH] [--equations PATH] [--runs N]
//   gvae-bench decode [--model PATH] [--count N] [--runs N] [--nodes N] [--tries K]   chemistry vs grammar only,
//                                                              and the cost of one SMILES prefix judgement
//   gvae-bench conv [--runs N]            2-D convolutions at the DCGAN shapes, forward and backward
//   gvae-bench decode --molecules FILE    valid molecules of FILE that the constraint would refuse
import Foundation
import GrammarVAE

/// `--flag value` pairs, each checked: an unknown flag, a missing or bad value exits 2.
struct BenchOptions {
  var values: [String: String] = [:]

  init(_ arguments: [String], usage: String, integers: Set<String>, strings: Set<String>,
    check: (String, String) -> Bool = { _, _ in true }) {
    func die(_ m: String) -> Never {
      FileHandle.standardError.write(Data("gvae-bench: \(m)\nusage: \(usage)\n".utf8))
      exit(2)
    }
    var i = 0
    while i < arguments.count {
      let flag = arguments[i]
      guard integers.contains(flag) || strings.contains(flag) else { die("unknown option '\(flag)'") }
      guard i + 1 < arguments.count else { die("\(flag) needs a value") }
      let v = arguments[i + 1]
      if integers.contains(flag) {
        guard let n = Int(v), n > 0 else { die("\(flag) needs a positive integer, got '\(v)'") }
        _ = n
      }
      guard check(flag, v) else { die("\(flag): bad value '\(v)'") }
      values[flag] = v
      i += 2
    }
  }

  func int(_ flag: String) -> Int? { values[flag].flatMap { Int($0) } }
  subscript(_ flag: String) -> String? { values[flag] }
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "parse" {
  let o = BenchOptions(
    Array(arguments.dropFirst()), usage: "gvae-bench parse [--zinc PATH] [--equations PATH] [--runs N]",
    integers: ["--runs"], strings: ["--zinc", "--equations"])
  runParseBenchmarks(o)
} else if arguments.first == "decode" {
  let o = BenchOptions(
    Array(arguments.dropFirst()), usage: "gvae-bench decode [--model PATH] [--count N] [--runs N] [--nodes N] [--tries K] [--molecules SMILES_FILE]",
    integers: ["--count", "--runs", "--nodes", "--tries"], strings: ["--model", "--molecules"])
  runDecodeBenchmarks(o)
} else if arguments.first == "conv" {
  runConvBenchmarks(BenchOptions(
    Array(arguments.dropFirst()), usage: "gvae-bench conv [--runs N]", integers: ["--runs"], strings: []))
} else {
  let o = BenchOptions(
    arguments,
    usage: "gvae-bench [--runs N] [--only matmul|\(Preset.allCases.map(\.rawValue).joined(separator: "|"))] "
      + "[--zinc-batch N] [--equation-batch N] [--threads N] [--bf16 1]",
    integers: ["--runs", "--zinc-batch", "--equation-batch", "--threads", "--bf16"], strings: ["--only"],
    check: { flag, v in
      (flag != "--only" || v == "matmul" || Preset(rawValue: v) != nil) && (flag != "--bf16" || v == "1")
    })
  runEngineBenchmarks(o)
}
