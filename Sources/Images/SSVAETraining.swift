// Training M2: a seeded choice of the few labelled images (balanced over classes), one
// labelled and one unlabelled batch per step, dynamic binarisation, validation error, best
// model, atomic checkpoints and exact resume (the image VAE trainer's conventions);
// data-parallel under mpirun.
import Engine
import Foundation
import NN

public struct SSVAETrainingSettings: Codable, Sendable, Equatable, TrainerSettings {
  /// Unlabelled images per step; an epoch is one pass over them.
  public var batchSize: Int = 100
  /// Labelled images per step (at most the number of labels).
  public var labelledBatchSize: Int = 100
  public var epochs: Int = 100
  /// The paper's Adam learning rate (Kingma et al. 2014, §4).
  public var learningRate: Float = 3e-4
  public var seed: UInt64 = 0
  /// Training images whose labels are used; the same number of each class.
  public var labels: Int = 100
  /// α of the classification term; nil is the paper's 0.1·N.
  public var alpha: Double? = nil
  /// Labelled training images held out to pick the best model by q(y|x)'s error.
  public var validationCount: Int = 1000
  public var binarize: Bool = true
  public var adamEpsilon: Float = 1e-4
  public var maxMinutes: Double = 0
  public var checkpointMinutes: Double = 10
  /// M1+M2: each step's inputs are drawn from the M1 posteriors (means plus deviations times
  /// fresh normal noise, as Kingma et al.'s code does) rather than fixed at the means. Set by
  /// the trainer from the deviations it is given; nil (older checkpoints) is false.
  public var featureNoise: Bool? = nil

  public init() {}
}

public struct SSVAEEpochRecord: Codable, Sendable, Equatable {
  public var epoch: Int
  public var step: Int
  /// Mean of the step losses (the estimate of J^α / N).
  public var trainLoss: Double
  public var labelledBound: Double
  public var unlabelledBound: Double
  public var crossEntropy: Double
  public var validationError: Double?
  public var seconds: Double
  public var imagesPerSecond: Double
}

public struct SSVAETrainerState: Codable, Sendable, Equatable, TrainerProgress {
  public var epoch = 0
  public var batchInEpoch = 0
  public var step = 0
  public var noise: SeededRandom
  public var bestValidationError = Double.infinity
  public var history: [SSVAEEpochRecord] = []
  public var sums = [Double](repeating: 0, count: 4)
  public var epochSteps = 0
  public var elapsed = 0.0
}

public enum SSVAETrainingEvent: TrainerEvent {
  case batch(epoch: Int, batch: Int, batches: Int, loss: Double, imagesPerSecond: Double)
  case epoch(SSVAEEpochRecord)
  case checkpoint(path: String)
  case bestModel(path: String, validationError: Double)
}

/// Under mpirun every rank runs its contiguous rows of the labelled and of the unlabelled
/// batch, with the noise one process draws for them; gradients are summed over the ranks in
/// buckets; only rank 0 writes files.
public final class SSVAETrainer:
  ImageTrainerBase<SSVAE, SSVAETrainingSettings, SSVAETrainerState, SSVAETrainingEvent, [Int]>, ResumableTrainer
{
  public let labelled: ImageSet
  public let unlabelled: ImageSet
  /// Binarised once (seed `Binarization.testSeed + 1`) when `settings.binarize`.
  public let validation: ImageSet
  public let weights: SSVAEWeights
  /// M1+M2 with posterior noise: the standard deviations of `labelled` and `unlabelled`.
  let labelledDeviations, unlabelledDeviations: ImageSet?
  let adam: Adam
  let reducer: GradientReducer

  /// Holds out the validation images, then picks `settings.labels / classes` labelled images
  /// of each class by a seeded shuffle; the rest are used without labels.
  /// `deviations` (M1+M2): the standard deviation of each input value, so that each step's
  /// inputs are drawn around `images` (see `SSVAE.featureDistributions`).
  public init(
    model: SSVAE, settings: SSVAETrainingSettings, images: ImageSet, deviations: ImageSet? = nil, outputPath: String
  ) throws(ImageTrainingError) {
    if let deviations, deviations.count != images.count || deviations.pixelsPerImage != images.pixelsPerImage {
      throw .data("\(deviations.count) deviations of \(deviations.pixelsPerImage) values for \(images.count) inputs of \(images.pixelsPerImage)")
    }
    let k = model.configuration.classes
    guard images.pixelsPerImage == model.configuration.pixels else {
      throw .data("the images are \(images.height)×\(images.width), the model's \(model.configuration.height)×\(model.configuration.width)")
    }
    guard let all = images.labels else { throw .data("the training images have no labels (train-labels-idx1-ubyte)") }
    guard all.allSatisfy({ (0..<k).contains($0) }) else { throw .data("labels outside 0…\(k - 1)") }
    guard settings.labels >= k, settings.labels % k == 0 else {
      throw .data("--labels \(settings.labels): give a multiple of the \(k) classes (the same number per class)")
    }
    var rng = SeededRandom(seed: settings.seed ^ 0xDA7A)
    var order = Array(0..<images.count)
    order.shuffle(using: &rng)
    let nVal = min(settings.validationCount, images.count / 2)
    let val = images.subset(Array(order.prefix(nVal)).sorted())
    let rest = Array(order.dropFirst(nVal))  // still shuffled: the first of each class are labelled
    let perClass = settings.labels / k
    var taken = [Int](repeating: 0, count: k)
    var chosen: [Int] = []
    var others: [Int] = []
    for i in rest {
      if taken[all[i]] < perClass {
        taken[all[i]] += 1
        chosen.append(i)
      } else {
        others.append(i)
      }
    }
    guard taken.allSatisfy({ $0 == perClass }), !others.isEmpty else {
      throw .data("not enough training images for \(perClass) labels per class and unlabelled ones (per class: \(taken))")
    }
    let labelled = images.subset(chosen.sorted())
    var unlabelled = images.subset(others.sorted())
    unlabelled.labels = nil  // unlabelled means unlabelled
    self.labelled = labelled
    self.unlabelled = unlabelled
    labelledDeviations = deviations?.subset(chosen.sorted())
    unlabelledDeviations = deviations?.subset(others.sorted())
    var settings = settings
    settings.featureNoise = deviations != nil
    validation = settings.binarize ? Binarization.fixed(val, seed: Binarization.testSeed + 1) : val
    weights = SSVAEWeights(labelledCount: labelled.count, unlabelledCount: unlabelled.count, alpha: settings.alpha)
    adam = Adam(
      parameters: model.parameters,
      hyperparameters: Adam.Hyperparameters(learningRate: settings.learningRate, epsilon: settings.adamEpsilon))
    reducer = GradientReducer(parameters: model.parameters, cluster: Cluster.world)
    super.init(
      model: model, settings: settings,
      state: SSVAETrainerState(noise: SeededRandom(seed: settings.seed &* 0x2545_F491_4F6C_DD1D &+ 11)),
      outputPath: outputPath)
    // Every rank starts from rank 0's weights.
    GradientReducer.broadcast(model.parameters, cluster: cluster)
  }

  public override func batches(epoch: Int) -> [[Int]] {
    var rng = SeededRandom(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
    var order = Array(0..<unlabelled.count)
    order.shuffle(using: &rng)
    let bs = max(1, settings.batchSize)
    return stride(from: 0, to: order.count, by: bs).map { Array(order[$0..<min(order.count, $0 + bs)]) }
  }

  /// The labelled batch and both batches' binarisation depend only on (seed, epoch, batch),
  /// so a resume sees the same steps.
  func stepData(_ rows: [Int], epoch: Int, batch: Int) -> (Tensor, [Int], Tensor) {
    var rng = SeededRandom(seed: settings.seed ^ 0xB1_0000_0000 &+ UInt64(epoch) << 24 &+ UInt64(batch))
    var pick = Array(0..<labelled.count)
    pick.shuffle(using: &rng)
    pick = Array(pick.prefix(max(1, min(settings.labelledBatchSize, labelled.count))))
    var x = labelled.batch(pick)
    var u = unlabelled.batch(rows)
    if settings.binarize {
      x = Binarization.sample(x, rng: &rng)
      u = Binarization.sample(u, rng: &rng)
    }
    if let ld = labelledDeviations, let ud = unlabelledDeviations {
      x = Self.perturbed(x, ld.batch(pick), rng: &rng)
      u = Self.perturbed(u, ud.batch(rows), rng: &rng)
    }
    return (x, pick.map { labelled.labels![$0] }, u)
  }

  /// x + σ ⊙ ε with ε ~ N(0, I).
  static func perturbed(_ x: Tensor, _ sigma: Tensor, rng: inout SeededRandom) -> Tensor {
    var out = x
    for i in out.storage.indices where sigma.storage[i] != 0 {
      out.storage[i] += sigma.storage[i] * rng.nextNormal()
    }
    return out
  }

  /// One step's numbers (summed over the ranks): the loss and the means of its terms.
  struct Step {
    var loss: Double
    var labelledBound: Double
    var unlabelledBound: Double
    var crossEntropy: Double
  }

  /// One Adam step on the labelled batch `x`, `y` and the unlabelled batch `u` (each whole;
  /// under mpirun each rank runs its contiguous rows of both with their rows of the step's
  /// noise); throws on a non-finite loss or gradient (nothing updated then).
  func trainStep(_ x: Tensor, _ y: [Int], _ u: Tensor) throws(ImageTrainingError) -> Step {
    zeroGradients(model.parameters)
    var rng = state.noise
    let noise = SSVAENoise(labelled: y.count, unlabelled: u.shape[0], configuration: model.configuration, rng: &rng)
    var sums: [Double]
    if cluster.size == 1 {
      let tape = Tape()
      let b = model.loss(labelled: x, labels: y, unlabelled: u, weights: weights, noise: noise, tape: tape)
      tape.backward(b.loss)
      sums = [Double(b.loss.value.scalar), b.labelledBound, b.unlabelledBound, b.crossEntropy]
    } else {
      let l = cluster.share(of: y.count)
      let r = cluster.share(of: u.shape[0])
      sums = [0, 0, 0, 0]
      reducer.begin()
      if !l.isEmpty || !r.isEmpty {
        let tape = Tape()
        tape.onParameterGradient = reducer.gradientReady
        let b = model.loss(
          labelled: x.sliced(axis: 0, range: l), labels: Array(y[l]), unlabelled: u.sliced(axis: 0, range: r),
          weights: weights, noise: noise.rows(labelled: l, unlabelled: r), batches: (y.count, u.shape[0]), tape: tape)
        tape.backward(b.loss)
        sums = [Double(b.loss.value.scalar), b.labelledBound, b.unlabelledBound, b.crossEntropy]
      }
      reducer.finish()
      cluster.allReduceSum(&sums)
    }
    if injectNonFiniteAtStep == state.step { sums[0] = .nan }
    let norm = globalGradientNorm(model.parameters)
    guard sums[0].isFinite && norm.isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    adam.step()
    state.noise = rng
    return Step(loss: sums[0], labelledBound: sums[1], unlabelledBound: sums[2], crossEntropy: sums[3])
  }

  override func trainStep(_ rows: [Int], epoch: Int, batch: Int) throws(ImageTrainingError) -> Int {
    let (x, y, u) = stepData(rows, epoch: epoch, batch: batch)
    let b = try trainStep(x, y, u)
    state.epochSteps += 1
    for (i, v) in [b.loss, b.labelledBound, b.unlabelledBound, b.crossEntropy].enumerated() {
      state.sums[i] += v
    }
    return u.shape[0] + y.count
  }

  override func batchEvent(epoch: Int, batch: Int, batches: Int, rate: Double) -> SSVAETrainingEvent {
    .batch(epoch: epoch, batch: batch, batches: batches, loss: state.sums[0] / Double(state.epochSteps), imagesPerSecond: rate)
  }

  override func epochRecord(epoch: Int, seconds: Double, rate: Double) -> SSVAEEpochRecord {
    let n = Double(max(state.epochSteps, 1))
    return SSVAEEpochRecord(
      epoch: epoch + 1, step: state.step, trainLoss: state.sums[0] / n, labelledBound: state.sums[1] / n,
      unlabelledBound: state.sums[2] / n, crossEntropy: state.sums[3] / n,
      validationError: validation.count > 0 ? model.classificationError(validation) : nil,
      seconds: seconds, imagesPerSecond: rate)
  }

  /// The model file is the best epoch's by the validation error.
  override var keepsLatestModel: Bool { false }

  override func epochEnded(_ record: SSVAEEpochRecord) throws(ImageTrainingError) {
    state.sums = [0, 0, 0, 0]
    state.epochSteps = 0
    // Without a validation set every epoch's model is kept (the last one wins).
    let monitored = record.validationError ?? -Double(state.epoch)
    if monitored < state.bestValidationError || record.validationError == nil {
      state.bestValidationError = monitored
      try saveModel(to: outputPath)
      onEvent(.bestModel(path: outputPath, validationError: monitored))
    }
  }

  // MARK: Files

  override var summaryFields: [String: String] {
    var s: [String: String] = [:]
    s["labelled_images"] = String(labelled.count)
    s["unlabelled_images"] = String(unlabelled.count)
    s["validation_images"] = String(validation.count)
    s["alpha"] = String(format: "%.6g", Double(weights.classification) * Double(labelled.count + unlabelled.count))
    s["binarization"] = settings.binarize ? "dynamic; validation once with seed \(Binarization.testSeed + 1)" : "none"
    if settings.featureNoise == true { s["inputs"] = "drawn from the M1 posteriors each step (noise on active dimensions)" }
    if let last = state.history.last {
      s["train_loss"] = String(format: "%.4f", last.trainLoss)
      if let v = last.validationError { s["validation_error"] = String(format: "%.4f", v) }
    }
    return s
  }

  /// A checkpoint holds the weights M2 trains (an M1 comes from --m1; its configuration is in
  /// the metadata), Adam's moments and the trainer state.
  override var optimizers: [(prefix: String, optimizer: any Optimizer)] { [(Checkpoint.optimizerPrefix, adam)] }

  /// Restores weights, Adam and the trainer state; the configuration and the settings that
  /// decide the data (seed, labels, validation) must be this run's.
  public func resume() throws(ImageTrainingError) {
    let file = try ResumeCheckpoint(checkpointPath)
    guard file.file.metadata[ImageVAE.kindKey] == SSVAE.kind,
      let c = file.metadata(SSVAE.configurationKey, as: SSVAEConfiguration.self), c == model.configuration
    else { throw file.refusal("holds a model of another kind or configuration") }
    guard let t = file.settings(SSVAETrainingSettings.self), t.seed == settings.seed, t.labels == settings.labels,
      t.validationCount == settings.validationCount, t.batchSize == settings.batchSize,
      (t.featureNoise ?? false) == (settings.featureNoise ?? false)
    else { throw file.refusal("was written with another --seed, --labels, --validation-count, --batch-size or --m1-means") }
    let s = try checkpointState(file) { $0.sums.count == 4 }
    try restore(file, state: s)
  }
}
