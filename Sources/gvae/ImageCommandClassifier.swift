import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import Images
import NN

struct ImageClassifierCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "classifier",
    abstract: "A small CNN classifier of grey images: the yardstick of `gvae image score`.",
    subcommands: [ImageClassifierTrainCommand.self, ImageClassifierEvaluateCommand.self])
}

func loadClassifier(_ path: String) throws -> ImageClassifier {
  do { return try ImageClassifier.load(path: path) } catch { throw fail(error.description) }
}

extension ClassifierTrainingEvent: ReportedTrainerEvent {
  var reported: ReportedEvent<Record> {
    if case .batch(let e, let b, let n, let loss, let rate) = self { return .batch(epoch: e, batch: b, batches: n, loss: loss, rate: rate) }
    if case .epoch(let r) = self { return .epoch(r) }
    return .checkpoint
  }
}

/// "HxW" (or "N" for N×N) as a size, each side 2…4096.
func parseImageSize(_ s: String, option: String) throws -> (Int, Int) {
  let parts = s.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
  guard (1...2).contains(parts.count), let h = parts[0], let w = parts.last!,
    (2...4096).contains(h), (2...4096).contains(w)
  else { throw ValidationError("\(option) must be HxW or N (each side 2…4096), not '\(s)'") }
  return (h, w)
}

/// A comma-separated list of positive channel counts.
func parseChannels(_ s: String, option: String) throws -> [Int] {
  let v = s.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
  guard !v.isEmpty, v.count <= 6, v.allSatisfy({ $0 != nil && (1...4096).contains($0!) }) else {
    throw ValidationError("\(option) must be 1…6 comma-separated channel counts in 1…4096, not '\(s)'")
  }
  return v.map { $0! }
}

struct ImageClassifierTrainCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a CNN classifier on labelled grey images; reports the test accuracy each epoch.",
    discussion: """
      --data as for `gvae image vae train`, with labels (MNIST's *-labels-idx1-ubyte, the digits \
      CSV's last column). Network: conv 3×3 (first of --channels), then 4×4 stride-2 convolutions, \
      a dense layer of --hidden (the features `gvae image score` compares), dropout, softmax; ReLU. \
      Adam at --lr, times --decay each epoch; random shifts of up to --shift pixels. --size \
      resizes the images (bilinear) first, e.g. the 8×8 digits to 28×28. The model is written \
      after every epoch (atomically); beside it MODEL.checkpoint (weights, Adam's moments and \
      the run's position and random streams, every epoch and every --checkpoint-minutes) and \
      MODEL.log.jsonl. Ctrl-C saves a checkpoint; --resume continues exactly (the same --seed, \
      --batch-size, --shift and training images; --lr, --decay and --epochs may change). A NaN \
      or infinite loss stops training with the last good checkpoint kept. Under `mpirun -np N` \
      each rank trains its rows of every batch, with the shifts and dropout one process draws \
      for them (gradients summed): the same run as one process; only rank 0 writes, and a \
      checkpoint resumes with any number of ranks.
      """)

  @Option(help: "Data directory or file (with labels).") var data: String
  @Option(help: "Where to write the model (safetensors).") var output: String
  @Option(help: "Epochs.") var epochs: Int = 4
  @Option(name: .customLong("batch-size"), help: "Images per batch.") var batchSize: Int = 64
  @Option(help: "Adam learning rate of the first epoch.") var lr: Float = 1e-3
  @Option(help: "Learning-rate factor per epoch (epoch e runs at lr·decay^e).") var decay: Float = 0.5
  @Option(help: "Convolution channels, comma-separated.") var channels: String = "32,64,64"
  @Option(help: "Width of the feature layer.") var hidden: Int = 128
  @Option(help: "Dropout rate on the features.") var dropout: Float = 0.3
  @Option(help: "Largest random shift in pixels (0: none).") var shift: Int = 2
  @Option(help: "Resize the images to HxW (or N×N) first.") var size: String?
  @Option(help: "Random seed (initialisation, shuffles, shifts, dropout).") var seed: UInt64 = 0
  @Option(help: "Use only the first N training images.") var limit: Int?
  @OptionGroup var training: TrainingRunOptions
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads: Int?

  func validate() throws {
    guard (1...1000).contains(epochs) else { throw ValidationError("--epochs must be in 1…1000") }
    guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be in 1…100000") }
    guard lr > 0 && lr.isFinite else { throw ValidationError("--lr must be positive") }
    guard decay > 0 && decay <= 1 else { throw ValidationError("--decay must be in (0, 1]") }
    guard (1...65_536).contains(hidden) else { throw ValidationError("--hidden must be in 1…65536") }
    guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1)") }
    guard (0...16).contains(shift) else { throw ValidationError("--shift must be in 0…16") }
    let t = training
    guard t.maxMinutes >= 0 && t.maxMinutes.isFinite, t.checkpointMinutes > 0 && t.checkpointMinutes.isFinite else {
      throw ValidationError("--max-minutes must be non-negative and --checkpoint-minutes positive")
    }
    _ = try parseChannels(channels, option: "--channels")
    if let size { _ = try parseImageSize(size, option: "--size") }
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let d = try loadImageData(data, for: nil)
    var train = d.train
    var test = d.test
    if let limit, limit < train.count { train = train.subset(Array(0..<limit)) }
    if let size {
      let (h, w) = try parseImageSize(size, option: "--size")
      train = train.resized(height: h, width: w)
      test = test.resized(height: h, width: w)
    }
    guard let labels = train.labels else {
      throw fail("\(data): the training images have no labels (train-labels-idx1-ubyte or the CSV's label column)")
    }
    let classes = max(2, (labels.max() ?? 0) + 1)
    let config = ImageClassifierConfiguration(
      height: train.height, width: train.width, classes: classes, channels: try parseChannels(channels, option: "--channels"),
      hidden: hidden, dropout: dropout)
    let model: ImageClassifier
    do { model = try ImageClassifier(configuration: config, seed: seed) } catch { throw fail(error.description) }
    var settings = ClassifierTrainingSettings()
    settings.epochs = epochs
    settings.batchSize = batchSize
    settings.learningRate = lr
    settings.decay = decay
    settings.seed = seed
    settings.shift = shift
    settings.maxMinutes = training.maxMinutes
    settings.checkpointMinutes = training.checkpointMinutes
    let testSet: ImageSet? = test.labels == nil ? nil : test
    let trainer: ClassifierTrainer
    do {
      trainer = try ClassifierTrainer(model: model, settings: settings, train: train, test: testSet, outputPath: output)
    } catch { throw fail("\(data): \(error)") }
    trainer.summaryExtras = ["data": data, "layout": d.layout, "test_split": d.testSplit]
    if let size { trainer.summaryExtras["resized"] = size }
    if training.resume { try resumeTrainer(trainer) }
    printError(
      "gvae: image classifier \(config.channels.map(String.init).joined(separator: ",")) / \(hidden), \(classes) classes: "
        + "\(model.parameterCount) parameters, \(train.count) training / \(testSet?.count ?? 0) test images \(train.height)×\(train.width), batch \(batchSize)")

    try trainAndReport(trainer, output: output, epochs: epochs) { r in
      String(
        format: "epoch %d: loss %.4f, train accuracy %.4f, test accuracy %@, lr %.3g, %.0f images/s", r.epoch,
        r.trainLoss, r.trainAccuracy, r.testAccuracy.map { String(format: "%.4f", $0) } ?? "-", r.learningRate,
        r.imagesPerSecond)
    }
  }
}

struct ImageClassifierEvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Test accuracy of an image classifier (and the confusion counts per class).")

  @Option(help: "An image classifier model file.") var model: String
  @Option(help: "Data directory or file (with test labels).") var data: String
  @Option(help: "Resize the test images to HxW first (as the classifier was trained).") var size: String?
  @Option(help: "Evaluate only the first N test images.") var limit: Int?
  @Option(help: "Output: text or json.") var format: OutputFormat = .text

  func validate() throws {
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    if let size { _ = try parseImageSize(size, option: "--size") }
  }

  func run() throws {
    let m = try loadClassifier(model)
    let d = try loadImageData(data, for: nil)
    var test = d.test
    if let limit, limit < test.count { test = test.subset(Array(0..<limit)) }
    if let size {
      let (h, w) = try parseImageSize(size, option: "--size")
      test = test.resized(height: h, width: w)
    }
    let c = m.configuration
    guard test.height == c.height, test.width == c.width else {
      throw fail("\(data): the images are \(test.height)×\(test.width), the classifier is for \(c.height)×\(c.width) (--size resizes)")
    }
    guard let labels = test.labels else { throw fail("\(data): the test set has no labels") }
    if let bad = labels.first(where: { !(0..<c.classes).contains($0) }) {
      throw fail("\(data): test label \(bad) outside the classifier's 0…\(c.classes - 1)")
    }
    let p = m.predict(test.pixels, count: test.count)
    let correct = zip(p, labels).filter { $0 == $1 }.count
    let accuracy = Double(correct) / Double(test.count)
    switch format {
    case .json:
      print(String(format: "{\"images\": %d, \"accuracy\": %.6f}", test.count, accuracy))
    case .text:
      print("images \(test.count)")
      print(String(format: "accuracy %.4f (%d wrong)", accuracy, test.count - correct))
    }
  }
}

struct ImageScoreCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "score",
    abstract: "Sample quality by an image classifier: Fréchet distance of its features, inception-style score, labels.",
    discussion: """
      --samples is a .npy array [n, h, w] in [0, 1] (what `gvae image gan sample` and `gvae \
      image vae sample` write), or a data directory/file whose training images are scored \
      (the floor: real images against the test set). The Fréchet distance compares the means \
      and covariances of the classifier's penultimate features with those of --data's test \
      set (FID's formula with our classifier in place of Inception, so the numbers are only \
      comparable under one classifier). The score is exp(E KL(p(y|x) ‖ p(y))): 1 to the number \
      of classes. The histogram counts the predicted classes.
      """)

  @Option(help: "Images to score: a .npy file, or a data directory/file (its training images).") var samples: String
  @Option(help: "An image classifier model file.") var classifier: String
  @Option(help: "Reference data (its test set) for the Fréchet distance.") var data: String?
  @Option(help: "Score only the first N images (samples and reference).") var limit: Int?
  @Option(help: "Output: text or json.") var format: OutputFormat = .text

  func validate() throws {
    if let limit, limit < 2 { throw ValidationError("--limit must be at least 2") }
  }

  func run() throws {
    let m = try loadClassifier(classifier)
    let c = m.configuration
    var images: ImageSet
    if samples.hasSuffix(".npy") {
      do { images = try ImageSet.readNPY(path: samples) } catch { throw fail(error.description) }
    } else {
      images = try loadImageData(samples, for: nil).train
    }
    if let limit, limit < images.count { images = images.subset(Array(0..<limit)) }
    guard images.height == c.height, images.width == c.width else {
      throw fail("\(samples): the images are \(images.height)×\(images.width), the classifier is for \(c.height)×\(c.width)")
    }
    guard images.count >= 2 else { throw fail("\(samples): \(images.count) image; at least 2 are needed") }
    var reference: ImageSet? = nil
    if let data {
      var t = try loadImageData(data, for: nil).test
      if let limit, limit < t.count { t = t.subset(Array(0..<limit)) }
      guard t.height == c.height, t.width == c.width else {
        throw fail("\(data): the images are \(t.height)×\(t.width), the classifier is for \(c.height)×\(c.width)")
      }
      reference = t
    }
    let s = m.score(images.pixels, count: images.count, reference: reference)
    switch format {
    case .json:
      print(encodeJSON(s))
    case .text:
      print("images \(s.images)")
      if let fd = s.frechetDistance, let r = s.referenceImages {
        print(String(format: "frechet_distance %.4f (vs %d test images)", fd, r))
      }
      print(String(format: "inception_score %.4f (of at most %d)", s.inceptionScore, c.classes))
      print(String(format: "confident %.4f (max p(y|x) >= 0.9)", s.confident))
      print("labels " + s.labelHistogram.map(String.init).joined(separator: " "))
    }
  }
}
