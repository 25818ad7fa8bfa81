// The training loop: seeded shuffling, length buckets, validation, plateau schedule, best
// model, atomic checkpoints, exact resume, interruption and a NaN guard.
import CFG
import Engine
import Foundation
import NN

/// Training hyperparameters (the paper's per preset; every one can be overridden).
public struct TrainingSettings: Codable, Sendable, Equatable {
  public var batchSize: Int
  public var epochs: Int
  public var learningRate: Float = 1e-3
  public var seed: UInt64 = 0
  public var validationFraction: Double = 0.1
  public var plateauFactor: Float = 0.2
  public var plateauPatience: Int
  public var minimumLearningRate: Float = 1e-4
  /// Epochs over which the KL weight rises linearly from 0 to `klWeight` (0: no annealing).
  public var klAnnealEpochs: Double = 0
  /// The KL term's weight after annealing (β; 1 is the ELBO).
  public var klWeight: Float = 1
  /// Global gradient-norm clip (0: off).
  public var gradientClip: Float = 0
  /// Wall-clock limit; the run checkpoints and stops when it is reached (0: none).
  public var maxMinutes: Double = 0
  /// Checkpoint inside an epoch at least this often (minutes).
  public var checkpointMinutes: Double = 10
  /// Batches per length bucket: a pool of `bucketBatches × batchSize` shuffled rows is sorted
  /// by length and cut into batches (1: no bucketing).
  public var bucketBatches: Int = 32
  /// Rows per forward/backward pass (0: automatic from a memory budget); gradients of a batch's
  /// micro-batches are summed, so the result is the same as one pass (batch norm excepted).
  public var microBatch: Int = 0
  /// Word dropout (Bowman et al. 2016) for the autoregressive decoder: the fraction of
  /// teacher-forced previous productions replaced by the start index in training, so the
  /// decoder leans on z more and memorises less. nil or 0: off (older checkpoints: nil).
  public var wordDropout: Float? = nil
  /// Dropout on the decoder GRU's output states before the output layer, in training (Zaremba
  /// et al.'s non-recurrent dropout): a regulariser against the decoder memorising the training
  /// strings. nil or 0: off (older checkpoints: nil).
  public var decoderDropout: Float? = nil

  public init(batchSize: Int, epochs: Int, plateauPatience: Int) {
    self.batchSize = batchSize
    self.epochs = epochs
    self.plateauPatience = plateauPatience
  }
}

/// One epoch's record (also a line of the JSON-lines log).
public struct EpochRecord: Codable, Sendable, Equatable {
  public var epoch: Int
  public var step: Int
  public var trainLoss: Double
  public var trainReconstruction: Double
  public var trainKL: Double
  public var validationLoss: Double?
  public var validationReconstruction: Double?
  /// Mean KL of the validation rows (nats; a collapsed posterior shows as ~0).
  public var validationKL: Double? = nil
  public var learningRate: Float
  public var seconds: Double
  public var rowsPerSecond: Double
}

/// Everything needed to continue a run exactly where it stopped.
public struct TrainerState: Codable, Sendable, Equatable {
  public var epoch: Int = 0  // epochs completed
  public var batchInEpoch: Int = 0  // batches of the current epoch completed
  public var step: Int = 0
  /// The reparameterisation noise stream.
  public var noise: SeededRandom
  public var learningRate: Float
  @PlateauCheckpointCoding public var schedule: ReduceLROnPlateau
  public var bestValidation: Double = .infinity
  public var history: [EpochRecord] = []
  public var epochLoss: Double = 0
  public var epochReconstruction: Double = 0
  public var epochKL: Double = 0
  public var epochRows: Int = 0
  /// Training seconds (wall clock less the monitor's).
  public var elapsed: Double = 0
  public var adamStep: Int = 0
  /// Training rows seen over every sitting (molecules for ZINC).
  public var rowsSeen: Int = 0
}

/// Stores the plateau schedule under the keys checkpoints have always used (`factor`,
/// `patience`, `minimum`, `best`, `badEpochs`); `minDelta` and `cooldown` are always 0 here.
@propertyWrapper
public struct PlateauCheckpointCoding: Codable, Sendable, Equatable {
  public var wrappedValue: ReduceLROnPlateau

  public init(wrappedValue: ReduceLROnPlateau) { self.wrappedValue = wrappedValue }

  enum CodingKeys: String, CodingKey { case factor, patience, minimum, best, badEpochs }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    var s = ReduceLROnPlateau(
      factor: try c.decode(Float.self, forKey: .factor),
      patience: try c.decode(Int.self, forKey: .patience),
      minLearningRate: try c.decode(Float.self, forKey: .minimum), minDelta: 0)
    s.best = try c.decode(Double.self, forKey: .best)
    s.wait = try c.decode(Int.self, forKey: .badEpochs)
    wrappedValue = s
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(wrappedValue.factor, forKey: .factor)
    try c.encode(wrappedValue.patience, forKey: .patience)
    try c.encode(wrappedValue.minLearningRate, forKey: .minimum)
    try c.encode(wrappedValue.best, forKey: .best)
    try c.encode(wrappedValue.wait, forKey: .badEpochs)
  }
}

/// How a run ended.
public enum TrainingOutcome: Sendable, Equatable {
  case finished
  case interrupted
  case timeLimit
  case stoppedAfterEpoch(Int)
}

/// Errors that stop training.
public enum TrainingError: Error, Sendable, CustomStringConvertible {
  case nonFinite(epoch: Int, step: Int, checkpoint: String)
  case noData(String)
  case checkpoint(String)

  public var description: String {
    switch self {
    case .nonFinite(let e, let s, let c):
      return "loss became NaN or infinite at epoch \(e + 1), step \(s); stopped without saving. "
        + "The last good checkpoint is \(c) (resume with a lower --lr or --clip)"
    case .noData(let m): return m
    case .checkpoint(let m): return m
    }
  }
}

/// Progress events for a reporter (progress bar, logs).
public enum TrainingEvent {
  case batch(epoch: Int, batch: Int, batches: Int, loss: Double, rowsPerSecond: Double)
  case epoch(EpochRecord)
  case checkpoint(path: String)
  case bestModel(path: String, validationLoss: Double)
}

/// Trains a model on an encoded data set.
public final class Trainer {
  public let model: VAEModel
  public var settings: TrainingSettings
  public let train: EncodedDataset
  public let validation: EncodedDataset
  public var state: TrainerState
  let adam: Adam
  let mask: LossMask
  /// Where the best model and checkpoints go (`checkpointPath` is `outputPath + ".checkpoint"`).
  public let outputPath: String
  public var checkpointPath: String { outputPath + ".checkpoint" }
  /// Saved with the best model (F16 storage).
  public var halfPrecisionOutput = false
  /// Checked between batches; returning true saves a checkpoint and stops.
  public var shouldStop: () -> Bool = { false }
  public var onEvent: (TrainingEvent) -> Void = { _ in }
  /// Stops (with a checkpoint) after this many completed epochs: simulates a kill in tests.
  public var stopAfterEpoch: Int? = nil
  /// Test hook: makes the loss of this step non-finite.
  public var injectNonFiniteAtStep: Int? = nil
  /// Extra training-summary fields (data path and so on).
  public var summaryExtras: [String: String] = [:]
  /// Called at the start, then whenever `monitorMinutes` of training have passed and after
  /// each epoch (a learning curve: reconstruction on a fixed subset); its time is not
  /// counted as training time.
  public var monitor: (() -> Void)? = nil
  public var monitorMinutes: Double = 5
  /// The processes training together (data parallel): each computes its shard of every
  /// global batch; gradients are summed over ranks; only rank 0 writes files.
  public let cluster: Cluster
  let reducer: GradientReducer

  public init(
    model: VAEModel, settings: TrainingSettings, train: EncodedDataset, validation: EncodedDataset,
    outputPath: String
  ) {
    self.model = model
    self.settings = settings
    self.train = train
    self.validation = validation
    self.outputPath = outputPath
    self.mask = model.lossMask
    self.cluster = Cluster.world
    self.reducer = GradientReducer(parameters: model.network.parameters, cluster: Cluster.world)
    self.adam = Adam(
      parameters: model.network.parameters,
      hyperparameters: Self.adamHyperparameters(learningRate: settings.learningRate))
    let schedule = ReduceLROnPlateau(
      factor: settings.plateauFactor, patience: settings.plateauPatience,
      minLearningRate: settings.minimumLearningRate, minDelta: 0)
    self.state = TrainerState(
      noise: SeededRandom(seed: settings.seed &* 0x2545_F491_4F6C_DD1D &+ 7),
      learningRate: settings.learningRate, schedule: schedule)
  }

  /// Adam as in the paper's Keras code (ε 1e-7), with the rounding every model and checkpoint
  /// here was trained with (exact resume depends on it).
  static func adamHyperparameters(learningRate: Float) -> Adam.Hyperparameters {
    Adam.Hyperparameters(
      learningRate: learningRate, epsilon: 1e-7, biasCorrection: .correctedMoments)
  }

  // MARK: Batches

  /// The batches of an epoch: a seeded shuffle, then pools sorted by length and cut into
  /// batches whose order is shuffled again. Depends only on the seed and the epoch.
  public func batches(epoch: Int) -> [[Int]] {
    var rng = SeededRandom(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
    var order = Array(0..<train.count)
    order.shuffle(using: &rng)
    let bs = max(1, settings.batchSize)
    let pool = bs * max(1, settings.bucketBatches)
    var out: [[Int]] = []
    var start = 0
    while start < order.count {
      var chunk = Array(order[start..<min(order.count, start + pool)])
      if settings.bucketBatches > 1 {
        chunk.sort {
          train.lengths[$0] != train.lengths[$1] ? train.lengths[$0] < train.lengths[$1] : $0 < $1
        }
      }
      var k = 0
      while k < chunk.count {
        out.append(Array(chunk[k..<min(chunk.count, k + bs)]))
        k += bs
      }
      start += pool
    }
    if settings.bucketBatches > 1 { out.shuffle(using: &rng) }
    return out
  }

  /// Decoder steps for rows: grammar models stop at the longest true length (later steps are
  /// forced padding with zero loss); character models run every step.
  func decoderSteps(_ rows: [Int], in data: EncodedDataset) -> Int {
    guard model.configuration.kind == .grammar else { return data.steps }
    var m = 1
    for r in rows { m = max(m, Int(data.lengths[r])) }
    return min(m, data.steps)
  }

  func microBatches(_ rows: [Int], steps: Int) -> [[Int]] {
    let c = model.configuration
    var size = settings.microBatch
    if size <= 0 {
      let perRow =
        steps * (c.gruLayers * 5 * c.gruHidden + 3 * c.vocabularySize + 2 * c.gruInputSize)
        + c.steps * c.vocabularySize * 3 + c.convolutions.reduce(0) { $0 + 3 * c.steps * $1.filters }
      size = max(8, 120_000_000 / max(perRow, 1))
    }
    if c.convolutionBatchNorm || c.latentBatchNorm { size = max(size, rows.count) }  // batch statistics need the whole batch
    var out: [[Int]] = []
    var k = 0
    while k < rows.count {
      out.append(Array(rows[k..<min(rows.count, k + size)]))
      k += size
    }
    return out
  }

  /// `dropoutStep`: the optimisation step of a training batch, whose word dropout (if any) is
  /// drawn from (seed, step, row, position) alone, so a resume or a rank's shard sees the
  /// same mask as one uninterrupted process.
  func makeBatch(_ rows: [Int], from data: EncodedDataset, steps: Int, dropoutStep: Int? = nil) -> TrainingBatch {
    let T = data.steps
    var seq = [Int32]()
    seq.reserveCapacity(rows.count * T)
    for r in rows { seq.append(contentsOf: data.sequences[(r * T)..<((r + 1) * T)]) }
    var dropped: [Bool]? = nil
    if let step = dropoutStep, let rate = settings.wordDropout, rate > 0 {
      dropped = Self.wordDropoutMask(rows: rows, steps: steps, rate: rate, seed: settings.seed, step: step)
    }
    var stateMask: [Float]? = nil
    if let step = dropoutStep, let rate = settings.decoderDropout, rate > 0 {
      stateMask = Self.decoderDropoutMask(
        rows: rows, steps: steps, width: model.configuration.gruHidden, rate: rate, seed: settings.seed, step: step)
    }
    return TrainingBatch(sequences: seq, rows: rows.count, decoderSteps: steps, dropped: dropped, stateMask: stateMask)
  }

  /// [rows, steps, width]: 0 with probability `rate`, else 1/(1 − rate), by a hash of (seed,
  /// step, row, position, unit), so a resume or a rank's shard sees what one process would.
  static func decoderDropoutMask(rows: [Int], steps: Int, width: Int, rate: Float, seed: UInt64, step: Int) -> [Float] {
    let base = splitMixFinal(seed ^ 0x4443_4452_4F50_4F55 &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15)
    let keep = 1 / (1 - rate)
    let threshold = UInt64(Double(rate) * 0x1p53)
    var out = [Float](repeating: keep, count: rows.count * steps * width)
    for (i, r) in rows.enumerated() {
      let rowKey = splitMixFinal(base ^ UInt64(r) &* 0xD1B5_4A32_D192_ED03)
      for t in 0..<steps {
        let key = splitMixFinal(rowKey &+ UInt64(t) &* 0xA24B_AED4_963E_E407)
        let o = (i * steps + t) * width
        for j in 0..<width where splitMixFinal(key &+ UInt64(j)) >> 11 < threshold { out[o + j] = 0 }
      }
    }
    return out
  }

  /// [rows, steps]: true with probability `rate` at each step after the first, by a hash of
  /// (seed, step, row, position).
  static func wordDropoutMask(rows: [Int], steps: Int, rate: Float, seed: UInt64, step: Int) -> [Bool] {
    let base = splitMixFinal(seed ^ 0x5744_524F_5044_524F &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15)
    var out = [Bool](repeating: false, count: rows.count * steps)
    for (i, r) in rows.enumerated() {
      let rowKey = splitMixFinal(base ^ UInt64(r) &* 0xD1B5_4A32_D192_ED03)
      for t in 1..<max(steps, 1) {
        let u = Double(splitMixFinal(rowKey &+ UInt64(t)) >> 11) * 0x1p-53
        out[i * steps + t] = u < Double(rate)
      }
    }
    return out
  }

  func klWeight(epoch: Int, batch: Int, batches: Int) -> Float {
    guard settings.klAnnealEpochs > 0 else { return settings.klWeight }
    let progress = Double(epoch) + Double(batch) / Double(max(batches, 1))
    return settings.klWeight * Float(min(1, progress / settings.klAnnealEpochs))
  }

  /// One optimisation step on training rows: gradients of every micro-batch, the clip, Adam.
  /// Returns the batch's mean loss and its summed terms; throws on a non-finite loss or
  /// gradient (nothing is updated then).
  public func trainBatch(_ rows: [Int], klWeight kw: Float) throws -> (loss: Double, terms: LossTerms) {
    let net = model.network
    let steps = decoderSteps(rows, in: train)
    net.zeroGradients()
    // This rank's contiguous shard, with the noise one process would draw for those rows
    // (ε is drawn row by row, latentSize normals each); afterwards every rank's stream is
    // where one process's would be.
    let Z = model.configuration.latentSize
    let lo = rows.count * cluster.rank / cluster.size
    let hi = rows.count * (cluster.rank + 1) / cluster.size
    var noise = state.noise
    var after = state.noise
    if cluster.size > 1 {
      for _ in 0..<(lo * Z) { _ = noise.nextNormal() }
      for _ in 0..<(rows.count * Z) { _ = after.nextNormal() }
    }
    var terms = LossTerms()
    let micros = microBatches(Array(rows[lo..<hi]), steps: steps).filter { !$0.isEmpty }
    let parallel = cluster.size > 1
    for (m, micro) in micros.enumerated() {
      // The last backward pass sends each bucket as soon as its gradients are complete.
      let last = parallel && m == micros.count - 1
      if last { reducer.begin() }
      let t = net.trainStep(
        makeBatch(micro, from: train, steps: steps, dropoutStep: state.step), batchRows: rows.count, mask: mask,
        klWeight: kw, rng: &noise, onParameterGradient: last ? reducer.gradientReady : nil)
      terms.reconstruction += t.reconstruction
      terms.kl += t.kl
      terms.rows += t.rows
    }
    if parallel {
      if micros.isEmpty { reducer.begin() }  // a rank with no rows still takes part
      reducer.finish()
      var sums = [terms.reconstruction, terms.kl, Double(terms.rows)]
      cluster.allReduceSum(&sums)
      terms = LossTerms(reconstruction: sums[0], kl: sums[1], rows: Int(sums[2]))
      noise = after
    }
    var loss = (terms.reconstruction + Double(kw) * terms.kl) / Double(max(terms.rows, 1))
    if injectNonFiniteAtStep == state.step { loss = .nan }
    // ε 0: the scale is exactly clip/norm.
    let clip = settings.gradientClip
    let norm =
      clip > 0
      ? clipGradientsByGlobalNorm(net.parameters, maxNorm: clip, epsilon: 0)
      : globalGradientNorm(net.parameters)
    guard loss.isFinite && norm.isFinite else {
      throw TrainingError.nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    adam.learningRate = state.learningRate
    adam.step()
    state.noise = noise
    return (loss, terms)
  }

  // MARK: Loop

  /// Runs until the epochs are done, the time limit, an interruption or a non-finite loss.
  public func run() throws -> TrainingOutcome {
    guard train.count > 0 else { throw TrainingError.noData("no training rows") }
    if cluster.size > 1 {
      let c = model.configuration
      if c.convolutionBatchNorm || c.latentBatchNorm {
        // Synchronised batch norm: every rank joins each statistics sum, so each needs rows.
        if let small = batches(epoch: 0).map(\.count).filter({ $0 < cluster.size }).min() {
          throw TrainingError.noData(
            "this preset has batch norm, synchronised over the ranks, and a batch of \(small) rows "
              + "leaves a rank of \(cluster.size) without any: choose a --batch-size (or data size) "
              + "whose batches all have at least \(cluster.size) rows")
        }
        let ranks = self.cluster
        model.network.batchNormSum = { ranks.allReduceSum(&$0) }
      }
      // Every rank starts from rank 0's weights (a fresh start draws them per process).
      GradientReducer.broadcast(model.network.parameters + model.network.buffers, cluster: cluster)
    }
    let startTime = Date()
    let elapsedBefore = state.elapsed
    var lastCheckpoint = Date()
    var monitorTime = 0.0
    var lastMonitor = Date()
    func runMonitor() {
      guard let monitor, cluster.isRoot else { return }
      let t = Date()
      monitor()
      monitorTime += Date().timeIntervalSince(t)
      lastMonitor = Date()
    }
    func trainingSeconds() -> Double { elapsedBefore + Date().timeIntervalSince(startTime) - monitorTime }
    if state.step == 0 || state.batchInEpoch == 0 { runMonitor() }
    while state.epoch < settings.epochs {
      let epoch = state.epoch
      let batches = batches(epoch: epoch)
      var epochStart = Date()
      var rowsThisSession = 0
      while state.batchInEpoch < batches.count {
        let rows = batches[state.batchInEpoch]
        let kw = klWeight(epoch: epoch, batch: state.batchInEpoch, batches: batches.count)
        let (loss, terms) = try trainBatch(rows, klWeight: kw)
        state.step += 1
        state.batchInEpoch += 1
        state.epochLoss += loss * Double(terms.rows)
        state.epochReconstruction += terms.reconstruction
        state.epochKL += terms.kl
        state.epochRows += terms.rows
        state.rowsSeen += terms.rows
        rowsThisSession += terms.rows
        let secs = Date().timeIntervalSince(epochStart)
        onEvent(
          .batch(
            epoch: epoch, batch: state.batchInEpoch, batches: batches.count,
            loss: state.epochLoss / Double(max(state.epochRows, 1)),
            rowsPerSecond: Double(rowsThisSession) / max(secs, 1e-9)))
        state.elapsed = trainingSeconds()
        if monitor != nil && Date().timeIntervalSince(lastMonitor) > monitorMinutes * 60 {
          runMonitor()
        }
        // Ranks stop together: a stop request or the time limit on any rank stops all.
        var flags = [
          shouldStop() ? 1.0 : 0,
          settings.maxMinutes > 0 && Date().timeIntervalSince(startTime) > settings.maxMinutes * 60 ? 1 : 0,
        ]
        if cluster.size > 1 { cluster.allReduceSum(&flags) }
        if flags[0] > 0 {
          try saveCheckpoint()
          return .interrupted
        }
        if flags[1] > 0 {
          try saveCheckpoint()
          return .timeLimit
        }
        if Date().timeIntervalSince(lastCheckpoint) > settings.checkpointMinutes * 60 {
          try saveCheckpoint()
          lastCheckpoint = Date()
        }
      }
      // End of epoch: validation, schedule, best model, log, checkpoint.
      let seconds = Date().timeIntervalSince(epochStart)
      let val = validationLoss(epoch: epoch)
      let n = Double(max(state.epochRows, 1))
      let record = EpochRecord(
        epoch: epoch + 1, step: state.step, trainLoss: state.epochLoss / n,
        trainReconstruction: state.epochReconstruction / n, trainKL: state.epochKL / n,
        validationLoss: val?.loss, validationReconstruction: val?.reconstruction,
        validationKL: val?.kl, learningRate: state.learningRate, seconds: seconds,
        rowsPerSecond: Double(rowsThisSession) / max(seconds, 1e-9))
      state.history.append(record)
      let monitored = val?.loss ?? record.trainLoss
      state.learningRate = state.schedule.step(metric: monitored, learningRate: state.learningRate)
      state.epoch += 1
      state.batchInEpoch = 0
      state.epochLoss = 0
      state.epochReconstruction = 0
      state.epochKL = 0
      state.epochRows = 0
      if monitored < state.bestValidation {
        state.bestValidation = monitored
        model.trainingSummary = summary()
        if cluster.isRoot { try model.save(to: outputPath, half: halfPrecisionOutput) }
        onEvent(.bestModel(path: outputPath, validationLoss: monitored))
      }
      state.elapsed = trainingSeconds()
      onEvent(.epoch(record))
      runMonitor()
      try saveCheckpoint()
      lastCheckpoint = Date()
      epochStart = Date()
      if let k = stopAfterEpoch, state.epoch >= k, state.epoch < settings.epochs {
        return .stoppedAfterEpoch(state.epoch)
      }
      var late = [settings.maxMinutes > 0 && Date().timeIntervalSince(startTime) > settings.maxMinutes * 60 ? 1.0 : 0]
      if cluster.size > 1 { cluster.allReduceSum(&late) }
      if late[0] > 0 {
        return state.epoch < settings.epochs ? .timeLimit : .finished
      }
    }
    return .finished
  }

  /// Mean validation loss with noise seeded by the epoch (does not touch the training stream).
  /// - Parameter limit: use only the first `limit` validation rows (a quick estimate).
  /// Batch norm runs on its running statistics, as the model does in use.
  public func validationLoss(epoch: Int, limit: Int? = nil) -> (
    loss: Double, reconstruction: Double, kl: Double
  )? {
    guard validation.count > 0 else { return nil }
    var rng = SeededRandom(seed: settings.seed ^ 0x5EED_0000 &+ UInt64(epoch))
    var rows = Array(0..<min(validation.count, limit ?? validation.count))
    rows.sort { validation.lengths[$0] < validation.lengths[$1] }
    var recon = 0.0
    var kl = 0.0
    var k = 0
    let bs = max(1, settings.batchSize)
    // Ranks share the chunks; each chunk's noise is the stream's at the chunk's first row,
    // so the sum is the same however the chunks are shared.
    let Z = model.configuration.latentSize
    var chunkIndex = -1
    var skipped = 0
    while k < rows.count {
      chunkIndex += 1
      let chunk = Array(rows[k..<min(rows.count, k + bs)])
      if chunkIndex % cluster.size != cluster.rank {
        k += bs
        continue
      }
      if cluster.size > 1 {
        for _ in skipped..<k { for _ in 0..<Z { _ = rng.nextNormal() } }
        skipped = k + chunk.count
      }
      let steps = decoderSteps(chunk, in: validation)
      for micro in microBatches(chunk, steps: steps) {
        let t = model.network.trainStep(
          makeBatch(micro, from: validation, steps: steps), batchRows: chunk.count, mask: mask,
          klWeight: 1, rng: &rng, training: false, computeGradients: false)
        recon += t.reconstruction
        kl += t.kl
      }
      k += bs
    }
    if cluster.size > 1 {
      var sums = [recon, kl]
      cluster.allReduceSum(&sums)
      (recon, kl) = (sums[0], sums[1])
    }
    let n = Double(rows.count)
    return ((recon + kl) / n, recon / n, kl / n)
  }

  // MARK: Checkpoints

  /// The training summary stored in model files.
  public func summaryForModel() -> String { summary() }

  func summary() -> String {
    var s: [String: String] = summaryExtras
    s["epochs_completed"] = String(state.epoch)
    s["batches_in_current_epoch"] = String(state.batchInEpoch)
    s["steps"] = String(state.step)
    s["training_rows"] = String(train.count)
    s["validation_rows"] = String(validation.count)
    s["seconds"] = String(format: "%.0f", state.elapsed)
    if let last = state.history.last {
      s["train_loss"] = String(format: "%.4f", last.trainLoss)
      if let v = last.validationLoss { s["validation_loss"] = String(format: "%.4f", v) }
    }
    s["settings"] = VAEModel.json(settings)
    return VAEModel.json(s)
  }

  /// Checkpoint names of Adam's moments (NN suffix, checkpoint prefix): `optimizer.m.<p>` and
  /// `optimizer.v.<p>` since the first checkpoints; the step count is in the trainer state.
  static let adamStateNames = [(".exp_avg", "optimizer.m."), (".exp_avg_sq", "optimizer.v.")]

  /// Writes weights, optimiser moments and trainer state to `checkpointPath` atomically.
  public func saveCheckpoint() throws {
    guard cluster.isRoot else { return }
    model.trainingSummary = summary()
    var file = model.container()
    let moments = adam.stateTensors()
    for p in adam.parameters {
      for (suffix, prefix) in Self.adamStateNames {
        file.entries[prefix + p.name] = SafeTensorsEntry(
          dtype: .F32, tensor: moments[p.name + suffix]!)
      }
    }
    state.adamStep = adam.stepCount
    file.metadata["gvae.trainer_state"] = VAEModel.json(state)
    file.metadata["gvae.training_settings"] = VAEModel.json(settings)
    try VAEModel.write(file, to: checkpointPath)
    onEvent(.checkpoint(path: checkpointPath))
  }

  /// Rejects counters no run can produce, before any of them sizes or seeds anything.
  func check(_ s: TrainerState) throws {
    func bad(_ m: String) -> TrainingError {
      .checkpoint("\(checkpointPath): impossible trainer state (\(m)); start without --resume")
    }
    let limit = 1 << 40
    for (name, v) in [
      ("epoch", s.epoch), ("batch", s.batchInEpoch), ("step", s.step), ("Adam step", s.adamStep),
      ("rows seen", s.rowsSeen), ("epoch rows", s.epochRows),
    ] where !(0...limit).contains(v) {
      throw bad("\(name) is \(v)")
    }
    guard s.epoch <= 1_000_000 else { throw bad("epoch is \(s.epoch)") }
    guard s.history.count <= s.epoch else {
      throw bad("\(s.history.count) epochs of history after \(s.epoch) epochs")
    }
    guard s.learningRate.isFinite && s.learningRate > 0 else {
      throw bad("learning rate is \(s.learningRate)")
    }
    guard s.elapsed.isFinite && s.elapsed >= 0 else { throw bad("elapsed time is \(s.elapsed)") }
    if train.count > 0 {
      let batchCount = batches(epoch: s.epoch).count
      guard s.batchInEpoch <= batchCount else {
        throw bad("batch \(s.batchInEpoch) of an epoch of \(batchCount) batches")
      }
    }
  }

  /// Restores weights, optimiser and trainer state from `checkpointPath`.
  public func resume() throws {
    let file = try VAEModel.read(path: checkpointPath)
    let loaded = try VAEModel.load(file, name: checkpointPath, expectedGrammar: model.grammar)
    guard loaded.configuration == model.configuration else {
      throw TrainingError.checkpoint(
        "\(checkpointPath) holds a model with a different configuration; start without --resume")
    }
    for (dst, src) in zip(model.network.allTensors, loaded.network.allTensors) {
      dst.value = src.value
    }
    guard let js = file.metadata["gvae.trainer_state"],
      let s = VAEModel.decodeJSON(TrainerState.self, js)
    else { throw TrainingError.checkpoint("\(checkpointPath): trainer state is missing") }
    try check(s)
    var moments = ["step": Tensor(shape: [1], storage: [Float(s.adamStep)])]
    for p in adam.parameters {
      for (suffix, prefix) in Self.adamStateNames {
        guard let t = file.entries[prefix + p.name]?.tensor else {
          throw TrainingError.checkpoint(
            "\(checkpointPath): optimizer state for \(p.name) is missing")
        }
        moments[p.name + suffix] = t
      }
    }
    do { try adam.loadState(moments) } catch {
      throw TrainingError.checkpoint("\(checkpointPath): \(error)")
    }
    state = s
  }
}

/// SplitMix64's finaliser: a bijective mix of a 64-bit key (the dropout masks' hash).
@inline(__always) func splitMixFinal(_ x: UInt64) -> UInt64 {
  var z = x
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}
