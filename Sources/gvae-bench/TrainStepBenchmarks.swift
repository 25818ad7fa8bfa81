// Training-step benchmarks: one step of the product's own trainer (`Trainer.trainBatch`:
// forward, backward, clip, Adam) for the Grammar VAE presets (REFERENCE.md §3), on random
// grammar derivations. Every row is marked full length so the decoder runs all MAX_LEN steps,
// as the PyTorch peer (tools/torch_train_step.py) does.
import CFG
import Engine
import Foundation
import GrammarVAE
import NN

/// A trainer for `preset` over `rows` random derivations of its grammar.
func benchmarkTrainer(_ preset: Preset, rows: Int, seed: UInt64) throws -> Trainer {
  let grammarName = preset.base == .equation ? "equation" : "zinc"
  let shipped = ShippedGrammar.all.first { $0.name == grammarName }!
  let g = try Grammar.named(grammarName)
  let steps = preset.defaultSteps(kind: .grammar)!
  let config = preset.configuration(kind: .grammar, steps: steps, vocabularySize: g.productions.count)
  let model = try VAEModel(configuration: config, grammar: g, grammarText: shipped.text, seed: seed)
  var rng = SeededRandom(seed: seed)
  var data = EncodedDataset(steps: steps)
  let pad = Int32(g.paddingProduction)
  while data.count < rows {
    guard let d = try? g.randomDerivation(maxLength: steps, terminationBias: 0.3, using: &rng) else { continue }
    data.strings.append("")
    data.sequences += d.map { Int32($0) } + [Int32](repeating: pad, count: steps - d.count)
    data.lengths.append(Int32(steps))  // run every step, like the peer
    data.lineNumbers.append(data.count)
  }
  var settings = preset.training
  settings.batchSize = rows
  settings.seed = seed
  settings.microBatch = rows
  return Trainer(
    model: model, settings: settings, train: data, validation: EncodedDataset(steps: steps),
    outputPath: "/dev/null")
}

/// Peak resident set size of this process in bytes (VmHWM), or 0 where unavailable.
func peakResidentBytes() -> Int {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
    return 0
  }
  for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
    let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    return kb * 1024
  }
  return 0
}

/// Resets the peak-RSS counter (Linux: writing 5 to clear_refs) so each benchmark reports
/// its own peak.
func resetPeakResident() {
  if let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
    h.write(Data("5".utf8))
    try? h.close()
  }
}

func runTrainStepBenchmark(_ preset: Preset, batch: Int, runs: Int) {
  resetPeakResident()
  let trainer: Trainer
  do { trainer = try benchmarkTrainer(preset, rows: batch, seed: 2017) } catch {
    FileHandle.standardError.write(Data("gvae-bench: \(error)\n".utf8))
    exit(1)
  }
  let rows = Array(0..<batch)
  var lastLoss = 0.0
  let timing = timedSteps(runs: runs) {
    lastLoss = (try? trainer.trainBatch(rows, klWeight: 1).loss) ?? .nan
  }
  let name = preset.base == .equation ? "equation" : "zinc"
  report(
    "\(name)\(preset.base == preset ? "" : "-ar")-train-step", medianSeconds: timing.median,
    [
      "batch": batch, "runs": runs, "molecules_per_second": Double(batch) / timing.median,
      "min_seconds": timing.min, "cpu_seconds": timing.cpu,
      "peak_rss_bytes": peakResidentBytes(), "loss": lastLoss,
      "parameters": trainer.model.network.parameterCount, "preset": preset.rawValue,
      "blas": BLAS.backendDescription, "blas_threads": BLAS.threadCount,
      "kernels": Kernels.instructionSet,
    ])
}

/// Wall-clock median and minimum of `runs` timed calls after one warm-up, and the median
/// CPU time (user + system, all threads) per call — less sensitive to a loaded machine.
func timedSteps(runs: Int, _ body: () -> Void) -> (median: Double, min: Double, cpu: Double) {
  func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec)
      + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
  }
  body()
  var wall: [Double] = []
  var cpu: [Double] = []
  for _ in 0..<max(1, runs) {
    let c0 = cpuSeconds()
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    cpu.append(cpuSeconds() - c0)
  }
  wall.sort()
  cpu.sort()
  return (wall[wall.count / 2], wall[0], cpu[cpu.count / 2])
}

/// `--runs N` (default 5), `--only zinc|equation|zinc-ar|equation-ar`, `--zinc-batch N`
/// (100), `--equation-batch N` (600), `--threads N` (BLAS threads; default: online cores).
/// Without `--only`: the paper's two presets.
func runTrainStepBenchmarks(_ options: BenchOptions) {
  let runs = options.int("--runs") ?? 5
  if let threads = options.int("--threads") { BLAS.setThreadCount(threads) }
  if options.int("--bf16") == 1 {
    guard BLAS.bfloat16Available else {
      FileHandle.standardError.write(Data("gvae-bench: --bf16 1 needs a CPU with AVX512-BF16\n".utf8))
      exit(2)
    }
    BLAS.bfloat16Products = true
  }
  let presets: [Preset] = options["--only"].flatMap { Preset(rawValue: $0) }.map { [$0] } ?? [.equation, .zinc]
  for p in presets {
    let batch =
      p.base == .equation
      ? options.int("--equation-batch") ?? 600 : options.int("--zinc-batch") ?? 100
    runTrainStepBenchmark(p, batch: batch, runs: runs)
  }
}
