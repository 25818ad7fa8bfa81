// Training a DCGAN: alternating Adam steps on D and G, seeded shuffles and noise, a fixed
// latent batch for per-epoch sample grids, atomic checkpoints with both Adam states, exact
// resume and a NaN guard; data-parallel under mpirun.
import Engine
import Foundation
import NN

public struct GANTrainingSettings: Codable, Sendable, Equatable, TrainerSettings {
  public var batchSize = 64
  public var epochs = 5
  /// Adam for both networks with DCGAN's values: lr 2e-4, β1 0.5.
  public var learningRate: Float = 2e-4
  public var beta1: Float = 0.5
  public var seed: UInt64 = 0
  public var maxMinutes: Double = 0
  public var checkpointMinutes: Double = 10
  /// Latents of the per-epoch sample grid (drawn once from the seed).
  public var fixedSamples = 64

  public init() {}
}

public struct GANEpochRecord: Codable, Sendable, Equatable {
  public var epoch: Int
  public var step: Int
  /// Mean discriminator loss −log D(x) − log(1 − D(G(z))) and generator loss −log D(G(z)).
  public var discriminatorLoss: Double
  public var generatorLoss: Double
  /// Mean D(x) on real batches and D(G(z)) on fake ones (before D's step).
  public var realScore: Double
  public var fakeScore: Double
  public var seconds: Double
  public var imagesPerSecond: Double
}

public struct GANTrainerState: Codable, Sendable, Equatable, TrainerProgress {
  public var epoch = 0
  public var batchInEpoch = 0
  public var step = 0
  /// The latent-noise stream of the training batches.
  public var noise: SeededRandom
  public var history: [GANEpochRecord] = []
  public var sums = [Double](repeating: 0, count: 4)
  public var epochImages = 0
  public var elapsed = 0.0
}

public enum GANTrainingEvent: TrainerEvent {
  case batch(epoch: Int, batch: Int, batches: Int, discriminatorLoss: Double, generatorLoss: Double,
    realScore: Double, fakeScore: Double, imagesPerSecond: Double)
  case epoch(GANEpochRecord)
  case checkpoint(path: String)
}

/// One step's numbers.
public struct GANStep: Sendable {
  public var discriminatorLoss: Double
  public var generatorLoss: Double
  public var realScore: Double
  public var fakeScore: Double
}

/// Under mpirun every rank runs its rows of each batch (with the latents one process would
/// draw for them) through both networks, with batch norm synchronised over the ranks;
/// gradients are summed in buckets; only rank 0 writes files.
public final class GANTrainer:
  ImageTrainerBase<ImageGAN, GANTrainingSettings, GANTrainerState, GANTrainingEvent, [Int]>, ResumableTrainer
{
  public let images: ImageSet
  let generatorAdam: Adam
  let discriminatorAdam: Adam
  /// The latents of the per-epoch sample grid.
  public let fixedLatents: Tensor
  let generatorReducer: GradientReducer
  let discriminatorReducer: GradientReducer

  public init(model: ImageGAN, settings: GANTrainingSettings, images: ImageSet, outputPath: String)
    throws(ImageTrainingError)
  {
    let c = model.configuration
    guard images.height == c.height && images.width == c.width else {
      throw .data("the images are \(images.height)×\(images.width), the GAN's \(c.height)×\(c.width)")
    }
    guard images.count > 0 else { throw .data("no training images") }
    self.images = images
    let h = Adam.Hyperparameters(learningRate: settings.learningRate, beta1: settings.beta1)
    generatorAdam = Adam(parameters: model.generatorParameters, hyperparameters: h)
    discriminatorAdam = Adam(parameters: model.discriminatorParameters, hyperparameters: h)
    generatorReducer = GradientReducer(parameters: model.generatorParameters, cluster: Cluster.world)
    discriminatorReducer = GradientReducer(parameters: model.discriminatorParameters, cluster: Cluster.world)
    var fixed = SeededRandom(seed: settings.seed ^ 0xF1ED_5A3B)
    fixedLatents = Tensor(randomNormal: [max(1, settings.fixedSamples), c.latentSize], rng: &fixed)
    super.init(
      model: model, settings: settings,
      state: GANTrainerState(noise: SeededRandom(seed: settings.seed &* 0x2545_F491_4F6C_DD1D &+ 11)),
      outputPath: outputPath)
    if cluster.size > 1 {
      // Each rank normalises with the whole batch's statistics, so each needs rows.
      let bs = max(1, settings.batchSize)
      let last = images.count % bs
      if let small = [min(bs, images.count), last].filter({ $0 > 0 && $0 < cluster.size }).min() {
        throw .data(
          "batch norm is synchronised over the ranks, and a batch of \(small) images leaves a rank of "
            + "\(cluster.size) without any: choose a --batch-size (or data size) whose batches all have at least "
            + "\(cluster.size) images")
      }
      let ranks = cluster
      model.batchNormSum = { ranks.allReduceSum(&$0) }
      // Every rank starts from rank 0's weights.
      GradientReducer.broadcast(model.parameters + model.buffers, cluster: cluster)
    }
  }

  /// The image order of an epoch in batches (the last may be short): only seed and epoch.
  public override func batches(epoch: Int) -> [[Int]] {
    var rng = SeededRandom(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
    var order = Array(0..<images.count)
    order.shuffle(using: &rng)
    let bs = max(1, settings.batchSize)
    return stride(from: 0, to: order.count, by: bs).map { Array(order[$0..<min(order.count, $0 + bs)]) }
  }

  /// Rows `lo..<hi` of a [n, d] tensor.
  static func rows(_ t: Tensor, _ lo: Int, _ hi: Int) -> Tensor {
    let d = t.shape[1]
    return Tensor(shape: [hi - lo, d], storage: Array(t.storage[(lo * d)..<(hi * d)]))
  }

  static func sigmoidSum(_ logits: Tensor) -> Double {
    var s = 0.0
    for v in logits.storage { s += 1 / (1 + exp(-Double(v))) }
    return s
  }

  /// Backward of `loss` with the gradients of `reducer`'s parameters summed over the ranks,
  /// each bucket as soon as its gradients are complete.
  func backward(_ loss: Var, on tape: Tape, reducer: GradientReducer) {
    guard cluster.size > 1 else { return tape.backward(loss) }
    reducer.begin()
    tape.onParameterGradient = reducer.gradientReady
    tape.backward(loss)
    reducer.finish()
  }

  /// One discriminator step then one generator step on real images `x` (the whole batch;
  /// under mpirun each rank runs its contiguous rows); throws on a non-finite loss or
  /// gradient before the step that would use it.
  public func trainBatch(_ x: Tensor) throws(ImageTrainingError) -> GANStep {
    let n = x.shape[0]
    var noise = state.noise
    let z = Tensor(randomNormal: [n, model.configuration.latentSize], rng: &noise)
    let whole = cluster.size == 1
    let lo = n * cluster.rank / cluster.size
    let hi = n * (cluster.rank + 1) / cluster.size
    let xs = whole ? x : Self.rows(x, lo, hi)
    let zs = whole ? z : Self.rows(z, lo, hi)
    let share: Int? = whole ? nil : n
    let gTape = Tape()
    let fake = model.generate(gTape.constant(zs), tape: gTape, training: true)

    // D: real batch and the generated batch (as a constant), each with its own statistics.
    zeroGradients(model.discriminatorParameters)
    let dTape = Tape()
    let realLogits = model.discriminate(dTape.constant(xs), tape: dTape)
    let fakeLogits = model.discriminate(dTape.constant(fake.value), tape: dTape)
    let dLoss = ImageGAN.discriminatorLoss(real: realLogits, fake: fakeLogits, batch: share)
    backward(dLoss, on: dTape, reducer: discriminatorReducer)
    // Sums over the ranks: D's loss and both mean scores.
    var sums = [Double(dLoss.value.scalar), Self.sigmoidSum(realLogits.value), Self.sigmoidSum(fakeLogits.value)]
    if !whole { cluster.allReduceSum(&sums) }
    var dv = sums[0]
    if injectNonFiniteAtStep == state.step { dv = .nan }
    guard dv.isFinite && globalGradientNorm(model.discriminatorParameters).isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    discriminatorAdam.step()

    // G: the non-saturating loss through the updated D, back into the same G forward pass;
    // D's weights are constants here, so its weight-gradient GEMMs are skipped.
    zeroGradients(model.generatorParameters)
    gTape.freeze(model.discriminatorParameters)
    let gLoss = ImageGAN.generatorLoss(fake: model.discriminate(fake, tape: gTape), batch: share)
    backward(gLoss, on: gTape, reducer: generatorReducer)
    var gSum = [Double(gLoss.value.scalar)]
    if !whole { cluster.allReduceSum(&gSum) }
    let gv = gSum[0]
    guard gv.isFinite && globalGradientNorm(model.generatorParameters).isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    generatorAdam.step()
    state.noise = noise
    return GANStep(
      discriminatorLoss: dv, generatorLoss: gv, realScore: sums[1] / Double(n), fakeScore: sums[2] / Double(n))
  }

  /// G's images of the fixed latents (running statistics).
  public func fixedSamples() -> [Float] { model.sample(latents: fixedLatents) }

  override func trainStep(_ rows: [Int], epoch: Int, batch: Int) throws(ImageTrainingError) -> Int {
    let s = try trainBatch(images.batch(rows))
    let n = Double(rows.count)
    state.sums[0] += s.discriminatorLoss * n
    state.sums[1] += s.generatorLoss * n
    state.sums[2] += s.realScore * n
    state.sums[3] += s.fakeScore * n
    state.epochImages += rows.count
    return rows.count
  }

  override func batchEvent(epoch: Int, batch: Int, batches: Int, rate: Double) -> GANTrainingEvent {
    let m = Double(max(state.epochImages, 1))
    return .batch(
      epoch: epoch, batch: batch, batches: batches, discriminatorLoss: state.sums[0] / m,
      generatorLoss: state.sums[1] / m, realScore: state.sums[2] / m, fakeScore: state.sums[3] / m,
      imagesPerSecond: rate)
  }

  override func epochRecord(epoch: Int, seconds: Double, rate: Double) -> GANEpochRecord {
    let m = Double(max(state.epochImages, 1))
    return GANEpochRecord(
      epoch: epoch + 1, step: state.step, discriminatorLoss: state.sums[0] / m, generatorLoss: state.sums[1] / m,
      realScore: state.sums[2] / m, fakeScore: state.sums[3] / m, seconds: seconds, imagesPerSecond: rate)
  }

  // A GAN has no validation bound: the latest weights are the model.
  override func epochEnded(_ record: GANEpochRecord) throws(ImageTrainingError) {
    state.sums = [0, 0, 0, 0]
    state.epochImages = 0
  }

  // MARK: Files

  override var summaryFields: [String: String] {
    var s: [String: String] = [:]
    s["training_images"] = String(images.count)
    if let last = state.history.last {
      s["discriminator_loss"] = String(format: "%.4f", last.discriminatorLoss)
      s["generator_loss"] = String(format: "%.4f", last.generatorLoss)
    }
    return s
  }

  static let generatorOptimizerPrefix = "optimizer.generator."
  static let discriminatorOptimizerPrefix = "optimizer.discriminator."
  override var optimizers: [(prefix: String, optimizer: any Optimizer)] {
    [(Self.generatorOptimizerPrefix, generatorAdam), (Self.discriminatorOptimizerPrefix, discriminatorAdam)]
  }

  /// A checkpoint holds both networks and their batch-norm statistics (the model's kind, so
  /// `gan sample` reads it too).
  override var checkpointTensors: [Parameter] { model.parameters + model.buffers }

  /// Restores both networks, both Adam states and the trainer state; the configuration must
  /// be this run's and the counters ones a run can produce.
  public func resume() throws(ImageTrainingError) {
    let file = try ResumeCheckpoint(checkpointPath)
    guard file.file.metadata[ImageVAE.kindKey] == ImageGAN.kind else { throw file.refusal("not a GAN checkpoint") }
    guard let c = file.metadata(ImageGAN.configurationKey, as: ImageGANConfiguration.self), c == model.configuration
    else { throw file.refusal("holds a GAN with a different configuration") }
    let s = try checkpointState(file) { $0.epochImages >= 0 && $0.sums.count == 4 }
    try restore(file, state: s)
  }
}
