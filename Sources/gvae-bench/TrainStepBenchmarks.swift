// Training-step benchmarks: one full step (forward, backward, Adam) of the paper's Grammar
// VAE networks (REFERENCE.md §3) on random one-hot inputs with random valid masks.
// The network definitions live here until the GrammarVAE module has its own.
import Engine
import Foundation
import NN

/// Encoder convolution spec: (filters, kernel).
struct TrainStepNetworkSpec {
  var name: String
  var steps: Int
  var vocabulary: Int
  var convolutions: [(filters: Int, kernel: Int)]
  var batchNormAfterConvolutions: Bool
  var encoderHidden: Int
  var latent: Int
  var batchNormLatent: Bool
  var gruHidden: Int
  var gruLayers: Int

  static let zinc = TrainStepNetworkSpec(
    name: "zinc", steps: 277, vocabulary: 76, convolutions: [(9, 9), (9, 9), (10, 11)],
    batchNormAfterConvolutions: false, encoderHidden: 435, latent: 56, batchNormLatent: false,
    gruHidden: 501, gruLayers: 3)
  static let equation = TrainStepNetworkSpec(
    name: "equation", steps: 15, vocabulary: 12, convolutions: [(2, 2), (3, 3), (4, 4)],
    batchNormAfterConvolutions: true, encoderHidden: 100, latent: 25, batchNormLatent: true,
    gruHidden: 100, gruLayers: 3)
}

/// The Grammar VAE: Conv1D encoder → (μ, log σ²) → z → dense → repeat → GRU stack →
/// time-distributed dense logits; loss = masked cross-entropy (sum over steps, mean over
/// batch) + KL (summed over latent dimensions).
struct BenchGrammarVAE {
  let spec: TrainStepNetworkSpec
  let convolutions: [Conv1D]
  let convolutionNorms: [BatchNorm]
  let encoderDense: Dense
  let mean: Dense
  let logVariance: Dense
  let latentNorm: BatchNorm?
  let decoderDense: Dense
  let gru: GRU
  let output: Dense

  init(_ spec: TrainStepNetworkSpec, rng: inout SeededRandom) {
    self.spec = spec
    var channels = spec.vocabulary
    var length = spec.steps
    var convs: [Conv1D] = []
    var norms: [BatchNorm] = []
    for (i, c) in spec.convolutions.enumerated() {
      convs.append(
        Conv1D(
          inputChannels: channels, outputChannels: c.filters, kernelSize: c.kernel,
          activation: .relu, name: "encoder.conv\(i + 1)", rng: &rng))
      if spec.batchNormAfterConvolutions {
        norms.append(BatchNorm(featureCount: c.filters, name: "encoder.norm\(i + 1)"))
      }
      channels = c.filters
      length -= c.kernel - 1
    }
    convolutions = convs
    convolutionNorms = norms
    encoderDense = Dense(
      inputSize: channels * length, outputSize: spec.encoderHidden, activation: .relu,
      name: "encoder.dense", rng: &rng)
    mean = Dense(
      inputSize: spec.encoderHidden, outputSize: spec.latent, name: "encoder.mean", rng: &rng)
    logVariance = Dense(
      inputSize: spec.encoderHidden, outputSize: spec.latent, name: "encoder.log_var", rng: &rng)
    latentNorm =
      spec.batchNormLatent ? BatchNorm(featureCount: spec.latent, name: "decoder.norm") : nil
    decoderDense = Dense(
      inputSize: spec.latent, outputSize: spec.latent, activation: .relu, name: "decoder.dense",
      rng: &rng)
    gru = GRU(
      inputSize: spec.latent, hiddenSize: spec.gruHidden, layerCount: spec.gruLayers,
      name: "decoder.gru", rng: &rng)
    output = Dense(
      inputSize: spec.gruHidden, outputSize: spec.vocabulary, name: "decoder.output", rng: &rng)
  }

  var parameters: [Parameter] {
    convolutions.flatMap(\.parameters) + convolutionNorms.flatMap(\.parameters)
      + encoderDense.parameters + mean.parameters + logVariance.parameters
      + (latentNorm?.parameters ?? []) + decoderDense.parameters + gru.parameters
      + output.parameters
  }

  /// The training loss for one batch.
  func loss(
    x: Tensor, targets: [Int], mask: Tensor, epsilon: Tensor, tape: Tape
  ) -> Var {
    let B = x.shape[0]
    var h = tape.constant(x)
    for (i, conv) in convolutions.enumerated() {
      h = conv(h, tape: tape)
      if spec.batchNormAfterConvolutions { h = convolutionNorms[i](h, tape: tape, training: true) }
    }
    h = encoderDense(h.reshaped([B, -1]), tape: tape)
    let mu = mean(h, tape: tape)
    let logVar = logVariance(h, tape: tape)
    var z = mu + tape.constant(epsilon) * exp(logVar * 0.5)
    if let latentNorm { z = latentNorm(z, tape: tape, training: true) }
    let d = decoderDense(z, tape: tape)
    // Repeat over steps by broadcasting against zeros [1, T, 1].
    let repeated =
      d.reshaped([B, 1, spec.latent]) + tape.constant(Tensor(zeros: [1, spec.steps, 1]))
    let logits = output(gru(repeated, tape: tape), tape: tape)
    return softmaxCrossEntropy(logits: logits, targets: targets, mask: mask)
      + gaussianKLDivergence(mean: mu, logVariance: logVar)
  }
}

/// Random one-hot inputs, their targets and random masks that allow each target.
func randomBatch(
  _ spec: TrainStepNetworkSpec, batch B: Int, rng: inout SeededRandom
) -> (x: Tensor, targets: [Int], mask: Tensor) {
  let T = spec.steps
  let C = spec.vocabulary
  var targets: [Int] = []
  var mask = Tensor(zeros: [B, T, C])
  for r in 0..<(B * T) {
    let t = Int(rng.next() % UInt64(C))
    targets.append(t)
    for c in 0..<C { mask.storage[r * C + c] = (c == t || rng.nextUniform() < 0.3) ? 1 : 0 }
  }
  return (oneHot(targets, depth: C).reshaped([B, T, C]), targets, mask)
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

func runTrainStepBenchmark(_ spec: TrainStepNetworkSpec, batch: Int, runs: Int) {
  resetPeakResident()
  var rng = SeededRandom(seed: 2017)
  let model = BenchGrammarVAE(spec, rng: &rng)
  let parameters = model.parameters
  let adam = Adam(parameters: parameters, learningRate: 1e-3)
  let data = randomBatch(spec, batch: batch, rng: &rng)
  var lastLoss: Float = 0
  let seconds = medianSeconds(runs: runs) {
    let epsilon = Tensor(randomNormal: [batch, spec.latent], rng: &rng)
    let tape = Tape()
    let loss = model.loss(
      x: data.x, targets: data.targets, mask: data.mask, epsilon: epsilon, tape: tape)
    zeroGradients(parameters)
    tape.backward(loss)
    adam.step()
    lastLoss = loss.value.scalar
  }
  report(
    "\(spec.name)-train-step", medianSeconds: seconds,
    [
      "batch": batch, "runs": runs, "molecules_per_second": Double(batch) / seconds,
      "peak_rss_bytes": peakResidentBytes(), "loss": Double(lastLoss),
      "parameters": parameters.reduce(0) { $0 + $1.value.count },
      "blas": BLAS.backendDescription, "kernels": Kernels.instructionSet,
    ])
}

/// `--runs N` (default 5), `--only zinc|equation`, `--zinc-batch N` (100),
/// `--equation-batch N` (600).
func runTrainStepBenchmarks(_ arguments: [String]) {
  func value(_ flag: String) -> String? {
    arguments.firstIndex(of: flag).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
  }
  let runs = value("--runs").flatMap(Int.init) ?? 5
  let only = value("--only")
  if only == nil || only == "equation" {
    runTrainStepBenchmark(
      .equation, batch: value("--equation-batch").flatMap(Int.init) ?? 600, runs: runs)
  }
  if only == nil || only == "zinc" {
    runTrainStepBenchmark(.zinc, batch: value("--zinc-batch").flatMap(Int.init) ?? 100, runs: runs)
  }
}
