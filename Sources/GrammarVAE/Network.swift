// The VAE network (Kusner et al. 2017, §3; REFERENCE.md §3) composed of NN layers on the
// Engine tape. Names and layouts are those of the PyTorch module in Models/README.md
// (`tools/torch_gvae.py`), so a model file's tensors are that module's state_dict.
import CFG
import Engine
import NN

/// How the reconstruction loss masks the softmax at each step.
public enum LossMask: Sendable {
  /// Plain softmax over the whole vocabulary (character VAE).
  case none
  /// Grammar masks, teacher-forced: row y of `table` [P, P] allows every usable production
  /// with the left-hand side of target y.
  case grammar(table: Tensor)

  public init(grammar g: Grammar) {
    let lhs = g.lhsIndexOfProduction
    let P = g.productions.count
    var table = Tensor(zeros: [P, P])
    for y in 0..<P {
      for p in 0..<P where lhs[p] == lhs[y] && g.isUsable(p) { table.storage[y * P + p] = 1 }
    }
    self = .grammar(table: table)
  }
}

/// One micro-batch for a training step.
public struct TrainingBatch {
  /// `[rows, steps]` target indices (the encoder reads all `steps`).
  public var sequences: [Int32]
  public var rows: Int
  /// Decoder steps to run: the longest true length in the batch (grammar) or all steps.
  public var decoderSteps: Int
  /// `[rows, decoderSteps]`: steps whose teacher-forced previous production the
  /// autoregressive decoder sees as the start index instead (word dropout); nil: none.
  public var dropped: [Bool]?
  /// `[rows, decoderSteps, gruHidden]`: 0 or 1/(1 − rate) per element of the decoder's GRU
  /// output before the output layer (decoder dropout); nil: none.
  public var stateMask: [Float]?

  public init(sequences: [Int32], rows: Int, decoderSteps: Int, dropped: [Bool]? = nil, stateMask: [Float]? = nil) {
    self.sequences = sequences
    self.rows = rows
    self.decoderSteps = decoderSteps
    self.dropped = dropped
    self.stateMask = stateMask
  }
}

/// Loss terms of one step, summed over the batch rows (divide by rows for means).
public struct LossTerms: Sendable, Equatable {
  public var reconstruction: Double = 0
  public var kl: Double = 0
  public var rows: Int = 0
}

/// The VAE: encoder q(z|x) and decoder p(x|z) as NN layers.
///
/// ```
/// encoder.conv.{i}  Conv1D (ReLU)      encoder.norm.{i}  BatchNorm (after the ReLU)
/// encoder.dense     Dense (ReLU) on the flattened [filters, length] output
/// encoder.mean, encoder.logvar  Dense
/// decoder.norm      BatchNorm on z     decoder.latent    Dense (ReLU)
/// decoder.embedding Embedding (autoregressive)
/// decoder.gru       GRU ×L             decoder.output    Dense
/// ```
public final class VAENetwork: @unchecked Sendable {
  /// Synchronised batch norm in data-parallel training: sums statistics over the ranks.
  public var batchNormSum: SumAcrossReplicas? = nil
  public let configuration: ModelConfiguration
  /// The autoregressive decoder's input at step 0 (the padding production or character).
  public let startIndex: Int
  let convolutions: [Conv1D]
  let convolutionNorms: [BatchNorm]
  let encoderDense: Dense
  let mean: Dense
  let logVariance: Dense
  let latentNorm: BatchNorm?
  let latent: Dense
  let embedding: Embedding?
  let gru: GRU
  let output: Dense

  /// Trainable parameters in a fixed order (optimiser state follows it).
  public let parameters: [Parameter]
  /// Non-trainable state saved with the model (batch-norm running statistics).
  public let buffers: [Parameter]

  /// Keras' batch-norm settings, as in the paper's code (momentum 0.99 = our 0.01).
  static let normMomentum: Float = 0.01
  static let normEpsilon: Float = 1e-3

  /// A freshly initialised network (each layer's NN initialiser, seeded).
  public init(configuration c: ModelConfiguration, startIndex: Int, seed: UInt64) {
    configuration = c
    self.startIndex = startIndex
    var rng = SeededRandom(seed: seed)
    var convs: [Conv1D] = []
    var norms: [BatchNorm] = []
    var channels = c.vocabularySize
    for (i, spec) in c.convolutions.enumerated() {
      convs.append(
        Conv1D(
          inputChannels: channels, outputChannels: spec.filters, kernelSize: spec.kernel,
          activation: .relu, name: "encoder.conv.\(i)", rng: &rng))
      if c.convolutionBatchNorm {
        norms.append(
          BatchNorm(
            featureCount: spec.filters, momentum: Self.normMomentum, epsilon: Self.normEpsilon,
            name: "encoder.norm.\(i)"))
      }
      channels = spec.filters
    }
    convolutions = convs
    convolutionNorms = norms
    encoderDense = Dense(
      inputSize: c.convolutionOutputLength * channels, outputSize: c.encoderHidden,
      activation: .relu, name: "encoder.dense", rng: &rng)
    mean = Dense(
      inputSize: c.encoderHidden, outputSize: c.latentSize, name: "encoder.mean", rng: &rng)
    logVariance = Dense(
      inputSize: c.encoderHidden, outputSize: c.latentSize, name: "encoder.logvar", rng: &rng)
    latentNorm =
      c.latentBatchNorm
      ? BatchNorm(
        featureCount: c.latentSize, momentum: Self.normMomentum, epsilon: Self.normEpsilon,
        name: "decoder.norm") : nil
    latent = Dense(
      inputSize: c.latentSize, outputSize: c.decoderHidden, activation: .relu,
      name: "decoder.latent", rng: &rng)
    embedding =
      c.decoder == .autoregressive
      ? Embedding(
        count: c.vocabularySize, size: c.embeddingSize, name: "decoder.embedding", rng: &rng)
      : nil
    gru = GRU(
      inputSize: c.gruInputSize, hiddenSize: c.gruHidden, layerCount: c.gruLayers,
      name: "decoder.gru", rng: &rng)
    output = Dense(
      inputSize: c.gruHidden, outputSize: c.vocabularySize, name: "decoder.output", rng: &rng)

    var ps = convs.flatMap(\.parameters) + norms.flatMap(\.parameters)
    ps += encoderDense.parameters + mean.parameters + logVariance.parameters
    ps += (latentNorm?.parameters ?? []) + latent.parameters + (embedding?.parameters ?? [])
    ps += gru.parameters + output.parameters
    parameters = ps
    buffers = norms.flatMap(\.buffers) + (latentNorm?.buffers ?? [])
  }

  /// Every saved tensor (parameters, then buffers).
  public var allTensors: [Parameter] { parameters + buffers }

  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  public func zeroGradients() { for p in parameters { p.zeroGradient() } }

  // MARK: Forward pieces

  /// One-hot `[rows, steps, vocabulary]` of padded index sequences.
  func oneHot(_ sequences: [Int32], rows: Int) -> Tensor {
    let c = configuration
    return Engine.oneHot(sequences.map { Int($0) }, depth: c.vocabularySize)
      .reshaped([rows, c.steps, c.vocabularySize])
  }

  /// μ and log σ² [B, Z] of a one-hot batch [B, T, V]; `training` uses batch statistics.
  func encode(_ x: Var, training: Bool) -> (mean: Var, logVariance: Var) {
    let tape = x.tape
    var h = x
    for (i, conv) in convolutions.enumerated() {
      h = conv(h, tape: tape)
      if !convolutionNorms.isEmpty {
        h = convolutionNorms[i](h, tape: tape, training: training, sumAcross: batchNormSum)
      }
    }
    // PyTorch's x.flatten(1) of [B, filters, length]: channels outermost.
    h = permute(h, [0, 2, 1]).reshaped([h.shape[0], -1])
    h = encoderDense(h, tape: tape)
    return (mean(h, tape: tape), logVariance(h, tape: tape))
  }

  /// relu(decoder.latent(norm(z))): the decoder's view of z, [B, D].
  func decoderInput(_ z: Var, training: Bool) -> Var {
    var h = z
    if let latentNorm { h = latentNorm(h, tape: z.tape, training: training, sumAcross: batchNormSum) }
    return latent(h, tape: z.tape)
  }

  /// Teacher-forced logits [B, steps, V]; `previous` [B·steps] holds each step's previous
  /// target (autoregressive decoder only).
  func decoderLogits(_ d: Var, previous: [Int], steps: Int, stateMask: [Float]? = nil) -> Var {
    let tape = d.tape
    var states: Var
    if let embedding {
      // The GRU's input is [d, e] at every step; d's projection is made once per row.
      let e = embedding(previous, shape: [d.shape[0], steps], tape: tape)
      states = gru(
        e, constantProjection: gru.constantProjection(d, tape: tape), width: d.shape[1], initialStates: nil,
        tape: tape
      ).output
    } else {
      states = gru(repeating: d, steps: steps, tape: tape)
    }
    if let stateMask { states = states * tape.constant(Tensor(shape: states.shape, storage: stateMask)) }
    return output(states, tape: tape)
  }

  // MARK: Loss

  /// The training objective of one micro-batch on `tape`, scaled by `1 / batchRows` (the
  /// full batch it belongs to), and its unscaled terms:
  ///
  /// ```
  /// loss = Σ_b [ Σ_t −log softmax_masked(logits_bt)[y_bt] + klWeight · KL_b ] / batchRows
  /// KL_b = −½ Σ_j (1 + log σ²_j − μ_j² − σ²_j)     (÷ Z when klAveraged)
  /// ```
  /// Only the first `decoderSteps` steps are decoded: for grammar models every later step
  /// has the forced padding production (one allowed entry), whose masked cross-entropy and
  /// gradient are 0, and a causal decoder's earlier steps never see later ones.
  public func loss(
    _ batch: TrainingBatch, batchRows: Int, mask: LossMask, klWeight: Float,
    rng: inout SeededRandom, training: Bool, tape: Tape
  ) -> (loss: Var, terms: LossTerms) {
    let c = configuration
    let B = batch.rows
    let T = batch.decoderSteps
    let full = c.steps
    precondition(T >= 1 && T <= full, "decoder steps \(T) outside 1...\(full)")
    let x = tape.constant(oneHot(batch.sequences, rows: B))
    let (mu, logVar) = encode(x, training: training)
    let epsilon = Tensor(randomNormal: [B, c.latentSize], std: c.epsilonStd, rng: &rng)
    let z = mu + tape.constant(epsilon) * exp(logVar * 0.5)

    var targets = [Int](repeating: 0, count: B * T)
    var previous = [Int](repeating: startIndex, count: embedding == nil ? 0 : B * T)
    for b in 0..<B {
      for t in 0..<T {
        targets[b * T + t] = Int(batch.sequences[b * full + t])
        if embedding != nil && t > 0 && batch.dropped?[b * T + t] != true {
          previous[b * T + t] = Int(batch.sequences[b * full + t - 1])
        }
      }
    }
    let logits = decoderLogits(
      decoderInput(z, training: training), previous: previous, steps: T, stateMask: training ? batch.stateMask : nil)
    let reconstruction: Var
    switch mask {
    case .none:
      reconstruction = softmaxCrossEntropy(logits: logits, targets: targets, reduction: .sum)
    case .grammar(let table):
      reconstruction = softmaxCrossEntropy(
        logits: logits, targets: targets, maskTable: table, maskRows: targets, reduction: .sum)
    }
    // NN's KL is a batch mean; the terms here are batch sums.
    let kl = gaussianKLDivergence(
      mean: mu, logVariance: logVar,
      reduction: c.klAveraged ? .meanOverDimensions : .sumOverDimensions)
    let total = (reconstruction + kl * (klWeight * Float(B))) / Float(batchRows)
    let terms = LossTerms(
      reconstruction: Double(reconstruction.value.scalar), kl: Double(kl.value.scalar) * Double(B),
      rows: B)
    return (total, terms)
  }

  /// Forward (and, with `computeGradients`, backward) for one micro-batch: gradients are
  /// accumulated into the parameters scaled by `1 / batchRows`. `training: false` runs batch
  /// norm on its running statistics (validation) and leaves them unchanged.
  public func trainStep(
    _ batch: TrainingBatch, batchRows: Int, mask: LossMask, klWeight: Float,
    rng: inout SeededRandom, training: Bool = true, computeGradients: Bool = true,
    onParameterGradient: ((Parameter) -> Void)? = nil
  ) -> LossTerms {
    let tape = Tape(recording: computeGradients)
    tape.onParameterGradient = onParameterGradient
    let (total, terms) = loss(
      batch, batchRows: batchRows, mask: mask, klWeight: klWeight, rng: &rng,
      training: training, tape: tape)
    if computeGradients { tape.backward(total) }
    return terms
  }

  // MARK: Inference

  /// Posterior means and log-variances [rows, Z] of a one-hot batch (running statistics).
  func posterior(oneHot x: Tensor) -> (mean: Tensor, logVariance: Tensor) {
    let tape = Tape(recording: false)
    let (m, v) = encode(tape.constant(x), training: false)
    return (m.value, v.value)
  }
}

/// The decoder run one step at a time for a batch of latents, in inference mode; the
/// autoregressive decoder is fed each row's previous choice.
final class DecoderStream {
  let net: VAENetwork
  private(set) var rows: Int
  private(set) var d: Tensor  // [rows, D]
  private(set) var states: [Tensor]?  // per GRU layer [rows, H]; nil before the first step
  /// Autoregressive decoder: d's projection by the GRU's first layer [rows, 3H], made once.
  private(set) var projection: Tensor?

  init(network: VAENetwork, latents z: Tensor) {
    net = network
    rows = z.shape[0]
    let tape = Tape(recording: false)
    let dv = network.decoderInput(tape.constant(z), training: false)
    d = dv.value
    if network.embedding != nil { projection = network.gru.constantProjection(dv, tape: tape).value }
  }

  /// Floats of one row's state (all layers).
  var stateSize: Int { net.configuration.gruLayers * net.configuration.gruHidden }

  /// Appends row r's state (all layers) to `out`; zeros before the first step.
  func appendState(row r: Int, to out: inout [Float]) {
    let H = net.configuration.gruHidden
    guard let states else {
      out += [Float](repeating: 0, count: stateSize)
      return
    }
    for s in states { out += s.storage[(r * H)..<((r + 1) * H)] }
  }

  /// Sets row r's state (all layers, as `appendState` writes it).
  func setState(row r: Int, _ state: ArraySlice<Float>) {
    let H = net.configuration.gruHidden
    if states == nil {
      states = (0..<net.configuration.gruLayers).map { _ in Tensor(shape: [rows, H], storage: [Float](repeating: 0, count: rows * H)) }
    }
    var k = state.startIndex
    for l in states!.indices {
      for j in 0..<H {
        states![l].storage[r * H + j] = state[k]
        k += 1
      }
    }
  }

  /// Keeps only the given rows (in that order), so finished rows cost nothing more.
  func keep(_ kept: [Int]) {
    func gather(_ t: Tensor) -> Tensor {
      let w = t.shape[1]
      var out = [Float]()
      out.reserveCapacity(kept.count * w)
      t.storage.withUnsafeBufferPointer { b in
        for r in kept { out += b[(r * w)..<((r + 1) * w)] }
      }
      return Tensor(shape: [kept.count, w], storage: out)
    }
    d = gather(d)
    projection = projection.map(gather)
    states = states?.map(gather)
    rows = kept.count
  }

  /// Logits of the next step [rows, V]; `previous` (autoregressive) holds each row's last
  /// choice (nil at the first step: the start index).
  func step(previous: [Int]?) -> Tensor {
    let tape = Tape(recording: false)
    let initial = states.map { $0.map(tape.constant) }
    let (out, last): (Var, [Var])
    if let embedding = net.embedding, let projection {
      let prev = previous ?? [Int](repeating: net.startIndex, count: rows)
      let e = embedding(prev, shape: [rows, 1], tape: tape)
      (out, last) = net.gru(
        e, constantProjection: tape.constant(projection), width: d.shape[1], initialStates: initial, tape: tape)
    } else {
      (out, last) = net.gru(tape.constant(d), repeating: true, steps: 1, initialStates: initial, tape: tape)
    }
    states = last.map(\.value)
    return net.output(out.reshaped([rows, net.configuration.gruHidden]), tape: tape).value
  }
}
