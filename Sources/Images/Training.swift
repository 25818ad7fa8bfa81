// Training an image VAE: seeded shuffling, dynamic binarisation, the IWAE paper's learning-rate
// schedule, validation, best model, atomic checkpoints, exact resume and a NaN guard.
import Engine
import Foundation
import NN

public struct ImageTrainingSettings: Codable, Sendable, Equatable, TrainerSettings {
  public var batchSize: Int = 100
  public var epochs: Int = 100
  public var learningRate: Float = 1e-3
  public var seed: UInt64 = 0
  /// Samples per image in the bound: 1 is the ELBO (analytic KL), k > 1 the IWAE bound.
  public var importanceSamples: Int = 1
  /// "iwae": stage i (0, 1, …, 7) lasts 3^i epochs at lr·10^(−i/7) (Burda et al. 2016, §5);
  /// "constant": lr throughout.
  public var schedule: String = "iwae"
  /// Training images held out (seeded) for validation and best-model keeping.
  public var validationCount: Int = 1000
  /// Fresh Bernoulli draw of every training image per epoch (false: the pixels as they are).
  public var binarize: Bool = true
  public var adamEpsilon: Float = 1e-4
  public var gradientClip: Float = 0
  public var maxMinutes: Double = 0
  public var checkpointMinutes: Double = 10

  public init() {}

  /// The learning rate of `epoch` (0-based) under the schedule.
  public func learningRate(epoch: Int) -> Float {
    guard schedule == "iwae" else { return learningRate }
    var stage = 0
    var end = 1
    while epoch >= end && stage < 7 {
      stage += 1
      end += Int(pow(3.0, Double(stage)))
    }
    return learningRate * Float(pow(10.0, -Double(stage) / 7))
  }
}

/// One epoch (also a line of the JSON-lines log; field names as the Grammar VAE's).
public struct ImageEpochRecord: Codable, Sendable, Equatable {
  public var epoch: Int
  public var step: Int
  /// Mean negative bound per training image (nats).
  public var trainLoss: Double
  public var trainReconstruction: Double
  public var trainKL: Double
  public var validationLoss: Double?
  public var validationReconstruction: Double?
  public var validationKL: Double?
  public var learningRate: Float
  public var seconds: Double
  public var rowsPerSecond: Double
}

public struct ImageTrainerState: Codable, Sendable, Equatable, TrainerProgress {
  public var epoch = 0
  public var batchInEpoch = 0
  public var step = 0
  /// The reparameterisation noise stream.
  public var noise: SeededRandom
  public var bestValidation = Double.infinity
  public var history: [ImageEpochRecord] = []
  public var epochLoss = 0.0
  public var epochReconstruction = 0.0
  public var epochKL = 0.0
  public var epochImages = 0
  public var elapsed = 0.0
  public var imagesSeen = 0
}

public enum ImageTrainingEvent: TrainerEvent {
  case batch(epoch: Int, batch: Int, batches: Int, loss: Double, imagesPerSecond: Double)
  case epoch(ImageEpochRecord)
  case checkpoint(path: String)
  case bestModel(path: String, validationLoss: Double)
}

public enum ImageTrainingOutcome: Sendable, Equatable {
  case finished, interrupted, timeLimit
  case stoppedAfterEpoch(Int)
}

public enum ImageTrainingError: Error, CustomStringConvertible {
  case nonFinite(epoch: Int, step: Int, checkpoint: String)
  case checkpoint(String)
  case data(String)

  public var description: String {
    switch self {
    case .nonFinite(let e, let s, let c):
      return "loss became NaN or infinite at epoch \(e + 1), step \(s); stopped without saving. "
        + "The last good checkpoint is \(c) (resume with a lower --lr, or --clip where the command has one)"
    case .checkpoint(let m), .data(let m): return m
    }
  }
}

/// Under mpirun every rank trains on its shard of each batch with the noise one process would
/// draw for those rows; gradients are summed over ranks; only rank 0 writes files.
public final class ImageTrainer:
  ImageTrainerBase<ImageVAE, ImageTrainingSettings, ImageTrainerState, ImageTrainingEvent, [Int]>, ResumableTrainer
{
  public let train: ImageSet
  /// Binarised once (seed `Binarization.testSeed + 1`) when `settings.binarize`.
  public let validation: ImageSet
  let adam: Adam
  let reducer: GradientReducer

  /// Splits `images` into training and validation images by a seeded shuffle.
  public init(
    model: ImageVAE, settings: ImageTrainingSettings, images: ImageSet, outputPath: String
  ) throws(ImageTrainingError) {
    guard images.pixelsPerImage == model.configuration.pixels else {
      throw .data(
        "the images are \(images.height)×\(images.width), the model's \(model.configuration.height)×\(model.configuration.width)")
    }
    let nVal = min(settings.validationCount, images.count / 2)
    var rng = SeededRandom(seed: settings.seed ^ 0xDA7A)
    var order = Array(0..<images.count)
    order.shuffle(using: &rng)
    let val = images.subset(Array(order.prefix(nVal)).sorted())
    let train = images.subset(Array(order.dropFirst(nVal)).sorted())
    guard train.count > 0 else { throw .data("no training images") }
    self.train = train
    self.validation = settings.binarize ? Binarization.fixed(val, seed: Binarization.testSeed + 1) : val
    self.adam = Adam(
      parameters: model.parameters,
      hyperparameters: Adam.Hyperparameters(
        learningRate: settings.learningRate, epsilon: settings.adamEpsilon))
    self.reducer = GradientReducer(parameters: model.parameters, cluster: Cluster.world)
    super.init(
      model: model, settings: settings,
      state: ImageTrainerState(noise: SeededRandom(seed: settings.seed &* 0x2545_F491_4F6C_DD1D &+ 7)),
      outputPath: outputPath)
    // Every rank starts from rank 0's weights (a fresh start draws them per process).
    GradientReducer.broadcast(model.parameters, cluster: cluster)
  }

  /// Rows `lo..<hi` of each sample of noise [n, L] or [k, n, L].
  static func noiseRows(_ eps: Tensor, _ lo: Int, _ hi: Int) -> Tensor {
    let s = eps.shape
    let (k, n, L) = s.count == 2 ? (1, s[0], s[1]) : (s[0], s[1], s[2])
    var out: [Float] = []
    out.reserveCapacity(k * (hi - lo) * L)
    for j in 0..<k { out += eps.storage[(j * n + lo) * L..<(j * n + hi) * L] }
    return Tensor(shape: s.count == 2 ? [hi - lo, L] : [k, hi - lo, L], storage: out)
  }

  /// This rank's share of the bound on `x` with noise `eps`: its contiguous rows, the loss
  /// divided by the whole batch; sums over ranks are every rank's afterwards. With
  /// `backward` the gradients (summed over ranks) are left in the parameters.
  func shardBound(_ x: Tensor, noise eps: Tensor, backward: Bool) -> (boundSum: Double, reconstruction: Double, kl: Double) {
    let n = x.shape[0]
    let lo = n * cluster.rank / cluster.size
    let hi = n * (cluster.rank + 1) / cluster.size
    let whole = cluster.size == 1
    var sums = [0.0, 0.0, 0.0]
    if backward { reducer.begin() }
    if hi > lo {
      let xs = whole ? x : Tensor(shape: [hi - lo, x.shape[1]], storage: Array(x.storage[lo * x.shape[1]..<hi * x.shape[1]]))
      let tape = Tape(recording: backward)
      if backward && !whole { tape.onParameterGradient = reducer.gradientReady }
      let b = model.bound(xs, noise: whole ? eps : Self.noiseRows(eps, lo, hi), tape: tape, normalizer: n)
      if backward { tape.backward(b.loss) }
      sums = [b.boundSum, b.reconstructionSum, b.klSum]
    }
    if !whole {
      if backward { reducer.finish() }
      cluster.allReduceSum(&sums)
    }
    return (sums[0], sums[1], sums[2])
  }

  /// The image order of an epoch, cut into batches: depends only on the seed and the epoch.
  public override func batches(epoch: Int) -> [[Int]] {
    var rng = SeededRandom(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
    var order = Array(0..<train.count)
    order.shuffle(using: &rng)
    let bs = max(1, settings.batchSize)
    return stride(from: 0, to: order.count, by: bs).map { Array(order[$0..<min(order.count, $0 + bs)]) }
  }

  /// A batch's pixels, binarised by a draw that depends only on (seed, epoch, batch): a fresh
  /// Bernoulli sample every epoch, the same after a resume.
  func batchPixels(_ rows: [Int], epoch: Int, batch: Int) -> Tensor {
    let x = train.batch(rows)
    guard settings.binarize else { return x }
    var rng = SeededRandom(seed: settings.seed ^ 0xB1_0000_0000 &+ UInt64(epoch) << 24 &+ UInt64(batch))
    return Binarization.sample(x, rng: &rng)
  }

  /// One Adam step; throws on a non-finite loss or gradient (nothing updated then).
  func trainBatch(_ x: Tensor) throws(ImageTrainingError) -> (boundSum: Double, reconstruction: Double, kl: Double, images: Int) {
    zeroGradients(model.parameters)
    var noise = state.noise
    let n = x.shape[0]
    let eps = Tensor(randomNormal: model.noiseShape(images: n, samples: settings.importanceSamples), rng: &noise)
    let b = shardBound(x, noise: eps, backward: true)
    var loss = -b.boundSum / Double(max(n, 1))
    if injectNonFiniteAtStep == state.step { loss = .nan }
    let norm =
      settings.gradientClip > 0
      ? clipGradientsByGlobalNorm(model.parameters, maxNorm: settings.gradientClip, epsilon: 0)
      : globalGradientNorm(model.parameters)
    guard loss.isFinite && norm.isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    adam.learningRate = settings.learningRate(epoch: state.epoch)
    adam.step()
    state.noise = noise
    return (b.boundSum, b.reconstruction, b.kl, n)
  }

  /// Mean negative bound on the validation images (noise seeded by the epoch), with the
  /// reconstruction and KL terms.
  public func validationLoss(epoch: Int) -> (loss: Double, reconstruction: Double, kl: Double)? {
    guard validation.count > 0 else { return nil }
    var rng = SeededRandom(seed: settings.seed ^ 0x5EED_0000 &+ UInt64(epoch))
    var bound = 0.0
    var recon = 0.0
    var kl = 0.0
    let bs = max(1, settings.batchSize)
    for start in stride(from: 0, to: validation.count, by: bs) {
      let x = validation.batch(Array(start..<min(validation.count, start + bs)))
      let eps = Tensor(randomNormal: model.noiseShape(images: x.shape[0], samples: settings.importanceSamples), rng: &rng)
      let b = shardBound(x, noise: eps, backward: false)
      bound += b.boundSum
      recon += b.reconstruction
      kl += b.kl
    }
    let n = Double(validation.count)
    return (-bound / n, recon / n, kl / n)
  }

  override func trainStep(_ rows: [Int], epoch: Int, batch: Int) throws(ImageTrainingError) -> Int {
    let b = try trainBatch(batchPixels(rows, epoch: epoch, batch: batch))
    state.epochLoss -= b.boundSum
    state.epochReconstruction += b.reconstruction
    state.epochKL += b.kl
    state.epochImages += b.images
    state.imagesSeen += b.images
    return b.images
  }

  override func batchEvent(epoch: Int, batch: Int, batches: Int, rate: Double) -> ImageTrainingEvent {
    .batch(
      epoch: epoch, batch: batch, batches: batches, loss: state.epochLoss / Double(max(state.epochImages, 1)),
      imagesPerSecond: rate)
  }

  override func epochRecord(epoch: Int, seconds: Double, rate: Double) -> ImageEpochRecord {
    let val = validationLoss(epoch: epoch)
    let n = Double(max(state.epochImages, 1))
    return ImageEpochRecord(
      epoch: epoch + 1, step: state.step, trainLoss: state.epochLoss / n,
      trainReconstruction: state.epochReconstruction / n, trainKL: state.epochKL / n,
      validationLoss: val?.loss, validationReconstruction: val?.reconstruction,
      validationKL: val?.kl, learningRate: settings.learningRate(epoch: epoch), seconds: seconds,
      rowsPerSecond: rate)
  }

  /// The model file is the best epoch's by the validation loss (the training loss without
  /// validation images).
  override var keepsLatestModel: Bool { false }

  override func epochEnded(_ record: ImageEpochRecord) throws(ImageTrainingError) {
    state.epochLoss = 0
    state.epochReconstruction = 0
    state.epochKL = 0
    state.epochImages = 0
    let monitored = record.validationLoss ?? record.trainLoss
    if monitored < state.bestValidation {
      state.bestValidation = monitored
      try saveModel(to: outputPath)
      onEvent(.bestModel(path: outputPath, validationLoss: monitored))
    }
  }

  // MARK: Files

  override var summaryFields: [String: String] {
    var s: [String: String] = [:]
    s["training_images"] = String(train.count)
    s["validation_images"] = String(validation.count)
    s["binarization"] =
      settings.binarize
      ? "dynamic: a fresh Bernoulli draw per epoch; validation once with seed \(Binarization.testSeed + 1)"
      : "none"
    if let last = state.history.last {
      s["train_loss"] = String(format: "%.4f", last.trainLoss)
      if let v = last.validationLoss { s["validation_loss"] = String(format: "%.4f", v) }
    }
    return s
  }

  /// A checkpoint holds the weights, Adam's moments and the trainer state.
  override var optimizers: [(prefix: String, optimizer: any Optimizer)] { [(Checkpoint.optimizerPrefix, adam)] }

  /// Restores weights, Adam and the trainer state from `checkpointPath`; the configuration
  /// must be this run's, and the counters must be ones a run can produce.
  public func resume() throws(ImageTrainingError) {
    let file = try ResumeCheckpoint(checkpointPath)
    guard let c = file.metadata(ImageVAE.configurationKey, as: ImageVAEConfiguration.self), c == model.configuration
    else { throw file.refusal("holds a model with a different configuration") }
    let s = try checkpointState(file) { $0.epochImages >= 0 && $0.imagesSeen >= 0 }
    try restore(file, state: s)
  }
}
