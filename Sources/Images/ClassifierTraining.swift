// Training the image classifier: Adam with a per-epoch decay, seeded shuffles, random shifts
// and dropout, the test accuracy after every epoch, the model written after every epoch,
// atomic checkpoints (weights, Adam's moments, the shift-and-dropout stream, the epoch's
// position and sums), exact resume and a NaN guard (the other image trainers' conventions);
// data-parallel under mpirun.
import Engine
import Foundation
import NN

public struct ClassifierTrainingSettings: Codable, Sendable, Equatable, TrainerSettings {
  public var batchSize = 64
  public var epochs = 4
  public var learningRate: Float = 1e-3
  /// Learning rate of epoch e: learningRate · decay^e.
  public var decay: Float = 0.5
  public var seed: UInt64 = 0
  /// Random translations of up to this many pixels (zero fill) while training.
  public var shift = 2
  public var maxMinutes: Double = 0
  public var checkpointMinutes: Double = 10

  public init() {}

  /// The learning rate of `epoch` (0-based).
  public func learningRate(epoch: Int) -> Float { learningRate * pow(decay, Float(epoch)) }
}

public struct ClassifierEpochRecord: Codable, Sendable, Equatable {
  public var epoch: Int
  public var step: Int
  public var trainLoss: Double
  public var trainAccuracy: Double
  public var testAccuracy: Double?
  public var learningRate: Float
  public var seconds: Double
  public var imagesPerSecond: Double
}

public struct ClassifierTrainerState: Codable, Sendable, Equatable, TrainerProgress {
  public var epoch = 0
  public var batchInEpoch = 0
  public var step = 0
  /// The current epoch's stream of shifts and dropout masks (reseeded at every epoch).
  public var noise: SeededRandom
  public var history: [ClassifierEpochRecord] = []
  /// The current epoch's sums: loss × images, correct predictions, images.
  public var epochLoss = 0.0
  public var epochCorrect = 0
  public var epochImages = 0
  public var elapsed = 0.0
  /// Training images of the run: a resume must train on as many.
  public var trainingImages: Int
}

public enum ClassifierTrainingEvent: TrainerEvent {
  case batch(epoch: Int, batch: Int, batches: Int, loss: Double, imagesPerSecond: Double)
  case epoch(ClassifierEpochRecord)
  case checkpoint(path: String)
}

/// Under mpirun every rank draws the whole batch's shifts and dropout mask, as one process
/// does, and runs its contiguous rows; gradients are summed over the ranks in buckets, so
/// every rank takes one process's step; only rank 0 writes files.
public final class ClassifierTrainer:
  ImageTrainerBase<ImageClassifier, ClassifierTrainingSettings, ClassifierTrainerState, ClassifierTrainingEvent, [Int]>,
  ResumableTrainer
{
  public let train: ImageSet
  /// Labelled test images, scored after every epoch (nil: none).
  public let test: ImageSet?
  let adam: Adam
  let reducer: GradientReducer

  /// `train` needs labels in the model's classes; `test`, if given, labels (a class the
  /// classifier lacks only counts as wrong).
  public init(
    model: ImageClassifier, settings: ClassifierTrainingSettings, train: ImageSet, test: ImageSet?, outputPath: String
  ) throws(ImageTrainingError) {
    let c = model.configuration
    guard train.height == c.height && train.width == c.width else {
      throw .data("the images are \(train.height)×\(train.width), the classifier's \(c.height)×\(c.width)")
    }
    guard let labels = train.labels, train.count > 0 else { throw .data("the training images have no labels") }
    if let bad = labels.first(where: { $0 < 0 || $0 >= c.classes }) {
      throw .data("label \(bad) outside 0…\(c.classes - 1)")
    }
    if let test, test.height != c.height || test.width != c.width || test.labels == nil {
      throw .data("the test images must be labelled and \(c.height)×\(c.width), as the training images")
    }
    self.train = train
    self.test = test
    adam = Adam(parameters: model.parameters, learningRate: settings.learningRate)
    reducer = GradientReducer(parameters: model.parameters, cluster: Cluster.world)
    super.init(
      model: model, settings: settings,
      state: ClassifierTrainerState(noise: Self.noise(seed: settings.seed, epoch: 0), trainingImages: train.count),
      outputPath: outputPath)
    // Every rank starts from rank 0's weights.
    GradientReducer.broadcast(model.parameters, cluster: cluster)
  }

  /// The shift-and-dropout stream of an epoch: only the seed and the epoch.
  static func noise(seed: UInt64, epoch: Int) -> SeededRandom { SeededRandom(seed: seed ^ 0xC1A5_0000 &+ UInt64(epoch)) }

  /// The image order of an epoch in batches (the last may be short): only the seed and epoch.
  public override func batches(epoch: Int) -> [[Int]] {
    var rng = SeededRandom(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
    var order = Array(0..<train.count)
    order.shuffle(using: &rng)
    let bs = max(1, settings.batchSize)
    return stride(from: 0, to: order.count, by: bs).map { Array(order[$0..<min(order.count, $0 + bs)]) }
  }

  /// One Adam step on the images `rows` (the whole batch; under mpirun each rank runs its
  /// contiguous rows): the batch's shifts, then its dropout mask, from the epoch's stream, as
  /// one process draws them. Returns the mean loss and the correct predictions (summed over the
  /// ranks); throws on a non-finite loss or gradient before anything is updated.
  func trainBatch(_ rows: [Int]) throws(ImageTrainingError) -> (loss: Double, correct: Int) {
    let c = model.configuration
    let parameters = model.parameters
    let labels = train.labels!
    var rng = state.noise
    let n = rows.count
    let x = ImageClassifier.shiftedBatch(train, rows, shift: settings.shift, rng: &rng)
    let mask = c.dropout > 0 ? dropoutMask(shape: [n, c.hidden], rate: c.dropout, rng: &rng) : nil
    let y = rows.map { labels[$0] }
    let whole = cluster.size == 1
    let share = whole ? 0..<n : cluster.share(of: n)
    zeroGradients(parameters)
    // [loss, correct] of this rank's rows; the loss divided by the whole batch.
    var sums = [0.0, 0.0]
    if !whole { reducer.begin() }
    if !share.isEmpty {
      let tape = Tape()
      let xs = whole ? x : x.sliced(axis: 0, range: share)
      let ms = whole ? mask : mask?.sliced(axis: 0, range: share)
      let l = model.logits(tape.constant(xs), tape: tape, dropoutMask: ms)
      let loss =
        whole
        ? softmaxCrossEntropy(logits: l, targets: y, reduction: .mean)
        : softmaxCrossEntropy(logits: l, targets: Array(y[share]), reduction: .sum) * (1 / Float(n))
      if !whole { tape.onParameterGradient = reducer.gradientReady }
      tape.backward(loss)
      sums[0] = Double(loss.value.scalar)
      let lv = l.value.storage
      for (k, t) in y[share].enumerated() {
        var best = 0
        for j in 1..<c.classes where lv[k * c.classes + j] > lv[k * c.classes + best] { best = j }
        if best == t { sums[1] += 1 }
      }
    }
    if !whole {
      reducer.finish()
      cluster.allReduceSum(&sums)
    }
    if injectNonFiniteAtStep == state.step { sums[0] = .nan }
    guard sums[0].isFinite && globalGradientNorm(parameters).isFinite else {
      throw .nonFinite(epoch: state.epoch, step: state.step, checkpoint: checkpointPath)
    }
    adam.learningRate = settings.learningRate(epoch: state.epoch)
    adam.step()
    state.noise = rng
    return (sums[0], Int(sums[1]))
  }

  override func trainStep(_ rows: [Int], epoch: Int, batch: Int) throws(ImageTrainingError) -> Int {
    let b = try trainBatch(rows)
    state.epochLoss += b.loss * Double(rows.count)
    state.epochCorrect += b.correct
    state.epochImages += rows.count
    return rows.count
  }

  override func batchEvent(epoch: Int, batch: Int, batches: Int, rate: Double) -> ClassifierTrainingEvent {
    .batch(
      epoch: epoch, batch: batch, batches: batches, loss: state.epochLoss / Double(max(state.epochImages, 1)),
      imagesPerSecond: rate)
  }

  override func epochRecord(epoch: Int, seconds: Double, rate: Double) -> ClassifierEpochRecord {
    let n = Double(max(state.epochImages, 1))
    return ClassifierEpochRecord(
      epoch: epoch + 1, step: state.step, trainLoss: state.epochLoss / n, trainAccuracy: Double(state.epochCorrect) / n,
      testAccuracy: test.map { model.accuracy($0) }, learningRate: settings.learningRate(epoch: epoch),
      seconds: seconds, imagesPerSecond: rate)
  }

  // The test accuracy is not for choosing a model: the model is the latest epoch's.
  override func epochEnded(_ record: ClassifierEpochRecord) throws(ImageTrainingError) {
    state.noise = Self.noise(seed: settings.seed, epoch: state.epoch)
    state.epochLoss = 0
    state.epochCorrect = 0
    state.epochImages = 0
  }

  // MARK: Files

  override var summaryFields: [String: String] {
    var s: [String: String] = [:]
    s["training_images"] = String(train.count)
    s["test_images"] = String(test?.count ?? 0)
    if let last = state.history.last {
      s["train_loss"] = String(format: "%.4f", last.trainLoss)
      if let a = last.testAccuracy { s["test_accuracy"] = String(format: "%.4f", a) }
    }
    return s
  }

  /// A checkpoint holds the weights, Adam's moments and step, and the trainer state (the
  /// epoch's position, sums and shift-and-dropout stream); the model's kind, so `classifier
  /// evaluate` and `score` read it too.
  override var optimizers: [(prefix: String, optimizer: any Optimizer)] { [(Checkpoint.optimizerPrefix, adam)] }

  /// Restores weights, Adam and the trainer state. The classifier's configuration, the
  /// settings that decide the batches and their draws (seed, batch size, shift) and the number
  /// of training images must be this run's; the learning rate, its decay and the epochs may
  /// change.
  public func resume() throws(ImageTrainingError) {
    let file = try ResumeCheckpoint(checkpointPath)
    guard file.file.metadata[ImageVAE.kindKey] == ImageClassifier.kind else {
      throw file.refusal("not an image classifier checkpoint")
    }
    guard let c = file.metadata(ImageClassifier.configurationKey, as: ImageClassifierConfiguration.self),
      c == model.configuration
    else { throw file.refusal("holds a classifier with a different configuration") }
    guard let t = file.settings(ClassifierTrainingSettings.self), t.seed == settings.seed,
      t.batchSize == settings.batchSize, t.shift == settings.shift
    else { throw file.refusal("was written with another --seed, --batch-size or --shift") }
    let s = try checkpointState(file) {
      $0.epochImages >= 0 && (0...$0.epochImages).contains($0.epochCorrect) && $0.epochLoss.isFinite
    }
    guard s.trainingImages == train.count else {
      throw file.refusal("was written for \(s.trainingImages) training images, this run has \(train.count) (--data, --limit)")
    }
    try restore(file, state: s)
  }
}

extension ImageClassifier {
  /// Rows `rows` of `set` shifted by a seeded offset in −shift…shift per axis (zero fill).
  static func shiftedBatch(_ set: ImageSet, _ rows: [Int], shift: Int, rng: inout SeededRandom) -> Tensor {
    var x = set.batch(rows)
    guard shift > 0 else { return x }
    let (h, w) = (set.height, set.width)
    let d = h * w
    x.storage.withUnsafeMutableBufferPointer { p in
      var tmp = [Float](repeating: 0, count: d)
      for k in 0..<rows.count {
        let dy = Int(rng.next() % UInt64(2 * shift + 1)) - shift
        let dx = Int(rng.next() % UInt64(2 * shift + 1)) - shift
        if dx == 0 && dy == 0 { continue }
        for i in 0..<d { tmp[i] = 0 }
        for y in 0..<h {
          let sy = y - dy
          guard sy >= 0 && sy < h else { continue }
          for xx in 0..<w {
            let sx = xx - dx
            if sx >= 0 && sx < w { tmp[y * w + xx] = p[k * d + sy * w + sx] }
          }
        }
        for i in 0..<d { p[k * d + i] = tmp[i] }
      }
    }
    return x
  }
}
