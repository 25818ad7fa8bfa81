import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import Images
import NN

#if canImport(Glibc)
  import Glibc
#endif

struct ImageSSVAECommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ssvae",
    abstract: "The semi-supervised VAE M2 (Kingma et al. 2014): a classifier from a few labels.",
    subcommands: [ImageSSVAETrainCommand.self, ImageSSVAEEvaluateCommand.self])
}

func loadSSVAEModel(_ path: String) throws -> (SSVAE, SafeTensorsFile) {
  do { return try SSVAE.load(path: path) } catch { throw fail(error.description) }
}

extension SSVAETrainingEvent: ReportedTrainerEvent {
  var reported: ReportedEvent<Record> {
    if case .batch(let e, let b, let n, let loss, let rate) = self { return .batch(epoch: e, batch: b, batches: n, loss: loss, rate: rate) }
    if case .epoch(let r) = self { return .epoch(r) }
    if case .checkpoint = self { return .checkpoint }
    return .other
  }
}

struct ImageSSVAETrainCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train M2 with --labels labelled training images (the same number per class) and the rest unlabelled.",
    discussion: """
      --data as for `gvae image vae train`, with training labels. The labelled images are \
      drawn per class by --seed after --validation-count labelled images are held out to pick \
      the best model by q(y|x)'s error. Each step: one labelled and one unlabelled batch, \
      loss (N_l/N)·mean −L(x,y) + (N_u/N)·mean −U(x) + (α/N)·mean −log q(y|x), α = 0.1·N²/N_l \
      unless --alpha (the paper's α = 0.1·N is --alpha with that value). Beside MODEL: MODEL.checkpoint, MODEL.log.jsonl; --resume continues exactly. \
      --m1 FILE trains M1+M2: M2 on the latent variables of an image VAE (the training images \
      binarised once first if that VAE was trained on binarised images), with a Gaussian \
      p(·|y,z), on the M1's active dimensions (whose means vary by 0.1 or more over the \
      training set; --m1-all-dimensions keeps all); each step draws them from the M1's \
      posteriors (--m1-means: the means alone), validation and test use the means; the M1 is stored inside the model file. Under `mpirun -np N` each rank trains its \
      rows of the labelled and of the unlabelled batch, with the noise one process draws for them \
      (gradients summed): the same run as one process; only rank 0 writes.
      """)

  @Option(help: "Data directory or file (with labels).") var data: String
  @Option(help: "Where to write the best model (safetensors).") var output: String
  @Option(help: "Labelled training images (a multiple of the number of classes).") var labels: Int = 100
  @Option(help: "Epochs (passes over the unlabelled images).") var epochs: Int = 100
  @Option(name: .customLong("batch-size"), help: "Unlabelled images per step.") var batchSize: Int = 100
  @Option(name: .customLong("labelled-batch-size"), help: "Labelled images per step.") var labelledBatchSize: Int = 100
  @Option(help: "Adam learning rate.") var lr: Float = 3e-4
  @Option(help: "Weight α of the classification term (default 0.1·N²/N_l; the paper's is 0.1·N).") var alpha: Double?
  @Option(help: "Hidden width of each network.") var hidden: Int = 500
  @Option(help: "Latent size.") var latent: Int = 50
  @Option(help: "Random seed (initialisation, split, labels, shuffles, binarisation, noise).") var seed: UInt64 = 0
  @Option(name: .customLong("validation-count"), help: "Labelled training images held out for model selection.")
  var validationCount: Int = 1000
  @Option(help: "Use only the first N training images.") var limit: Int?
  @Flag(name: .customLong("no-binarize"), help: "Train on the pixel values, not Bernoulli draws.")
  var noBinarize = false
  @OptionGroup var training: TrainingRunOptions
  @Option(
    name: .customLong("m1"),
    help: "M1+M2: an image VAE model file whose latent means M2 models (with a Gaussian p(·|y,z)).")
  var m1: String?
  @Flag(
    name: .customLong("m1-means"),
    help: "M1+M2: train on the M1's latent means alone (default: each step draws from its posteriors).")
  var m1Means = false
  @Flag(
    name: .customLong("m1-all-dimensions"),
    help: "M1+M2: keep the M1's inactive latent dimensions as inputs (default: only those whose means vary by 0.1 or more, as Kingma et al.'s code).")
  var m1AllDimensions = false
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads: Int?

  func validate() throws {
    guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
    guard (1...100_000).contains(batchSize), (1...100_000).contains(labelledBatchSize) else {
      throw ValidationError("--batch-size and --labelled-batch-size must be in 1…100000")
    }
    guard labels >= 1 else { throw ValidationError("--labels must be at least 1") }
    guard lr > 0 && lr.isFinite else { throw ValidationError("--lr must be positive") }
    if let alpha { guard alpha >= 0 && alpha.isFinite else { throw ValidationError("--alpha must be non-negative") } }
    guard (1...65_536).contains(hidden), (1...4096).contains(latent) else {
      throw ValidationError("--hidden must be in 1…65536 and --latent in 1…4096")
    }
    guard validationCount >= 0, training.maxMinutes >= 0, training.checkpointMinutes > 0 else {
      throw ValidationError("--validation-count and --max-minutes must be non-negative")
    }
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    if m1Means && m1 == nil { throw ValidationError("--m1-means needs --m1") }
    if m1AllDimensions && m1 == nil { throw ValidationError("--m1-all-dimensions needs --m1") }
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let d = try loadImageData(data, for: nil)
    var images = d.train
    if let limit, limit < images.count { images = images.subset(Array(0..<limit)) }
    guard let all = images.labels else { throw fail("\(data): no training labels (train-labels-idx1-ubyte); M2 needs some") }
    let classes = max(2, (all.max() ?? 0) + 1)
    var m1Model: ImageVAE? = nil
    var m1Binary = false
    var deviations: ImageSet? = nil
    var dimensions: [Int]? = nil
    if let m1 {
      let (vae, file) = try loadImageModel(m1)
      _ = try loadImageData(data, for: vae)
      m1Model = vae
      m1Binary = trainedOnBinaryImages(file)
      // One fixed binarisation before the M1 encoder: the features are then fixed data.
      if m1Binary && !noBinarize { images = Binarization.fixed(images, seed: seed ^ 0xF1) }
      if !m1AllDimensions {
        dimensions = SSVAE.activeDimensions(SSVAE.features(vae, images))
        guard !dimensions!.isEmpty else { throw fail("\(m1): no latent dimension of this M1 is active on \(data)") }
      }
      if m1Means {
        images = SSVAE.features(vae, images, dimensions: dimensions)
      } else {
        (images, deviations) = SSVAE.featureDistributions(vae, images, dimensions: dimensions)
      }
    }
    let config = SSVAEConfiguration(
      height: images.height, width: images.width, classes: classes, hidden: [hidden], latentSize: latent,
      input: m1 == nil ? "m2" : "m1+m2", m1Dimensions: dimensions)
    let model: SSVAE
    do { model = try SSVAE(configuration: config, seed: seed) } catch { throw fail(error.description) }
    model.m1 = m1Model
    model.m1Binary = m1Binary && !noBinarize
    var settings = SSVAETrainingSettings()
    settings.epochs = epochs
    settings.batchSize = batchSize
    settings.labelledBatchSize = labelledBatchSize
    settings.learningRate = lr
    settings.seed = seed
    settings.labels = labels
    settings.alpha = alpha
    settings.validationCount = validationCount
    settings.binarize = !noBinarize && m1 == nil
    settings.maxMinutes = training.maxMinutes
    settings.checkpointMinutes = training.checkpointMinutes
    let trainer: SSVAETrainer
    do { trainer = try SSVAETrainer(
        model: model, settings: settings, images: images, deviations: deviations, outputPath: output) } catch {
      throw fail("\(data): \(error)")
    }
    trainer.summaryExtras = ["data": data, "layout": d.layout, "test_split": d.testSplit, "model": m1 == nil ? "m2" : "m1+m2"]
    if let m1 { trainer.summaryExtras["m1"] = m1 }
    if training.resume { try resumeTrainer(trainer) }
    let w = trainer.weights
    printError(
      "gvae: \(m1 == nil ? "M2" : "M1+M2 (M2 on \(images.width) latent means of \(m1!)\(dimensions == nil ? "" : ", its active dimensions"))"), \(classes) classes, hidden \(hidden), latent \(latent): \(model.parameterCount) parameters, "
        + "\(trainer.labelled.count) labelled / \(trainer.unlabelled.count) unlabelled / \(trainer.validation.count) validation images "
        + "\(images.height)×\(images.width), α/N \(String(format: "%.4g", w.classification))")

    try trainAndReport(
      trainer, output: output, epochs: epochs,
      onEvent: { event in
        if case .bestModel(let path, let e) = event {
          TrainingLog.append("{\"event\":\"best\",\"path\":\(jsonString(path)),\"validation_error\":\(e)}", to: output + ".log.jsonl")
        }
      }
    ) { r in
      String(
        format: "epoch %d: loss %.4f (−L %.2f, −U %.2f, CE %.4f), validation error %@, %.0f images/s",
        r.epoch, r.trainLoss, r.labelledBound, r.unlabelledBound, r.crossEntropy,
        r.validationError.map { String(format: "%.4f", $0) } ?? "-", r.imagesPerSecond)
    }
  }
}

struct ImageSSVAEEvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Test error of q(y|x): the fraction of test images whose most probable class is wrong.",
    discussion: """
      The test set (MNIST's t10k files with t10k-labels; every 10th image of a single file) is \
      binarised once with seed 12345 when the model (or its M1) was trained on binarised \
      images; an M1+M2 model classifies its M1's latent means.
      """)

  @Option(help: "A semi-supervised VAE model file.") var model: String
  @Option(help: "Data directory or file (with test labels).") var data: String
  @Option(help: "Evaluate only the first N test images.") var limit: Int?
  @Option(help: "Output: text or json.") var format: OutputFormat = .text

  func validate() throws {
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  func run() throws {
    let (m, file) = try loadSSVAEModel(model)
    let data: ImageData
    do { data = try ImageData.load(self.data) } catch { throw fail(error.description) }
    let c = m.configuration
    let (h, w) = m.m1.map { ($0.configuration.height, $0.configuration.width) } ?? (c.height, c.width)
    guard data.test.height == h, data.test.width == w else {
      throw fail("\(self.data): the images are \(data.test.height)×\(data.test.width), the model is for \(h)×\(w)")
    }
    var test = data.test
    if let limit, limit < test.count { test = test.subset(Array(0..<limit)) }
    guard let labels = test.labels else { throw fail("\(self.data): the test set has no labels (t10k-labels-idx1-ubyte)") }
    if let bad = labels.first(where: { !(0..<c.classes).contains($0) }) {
      throw fail("\(self.data): test label \(bad) outside the model's 0…\(c.classes - 1)")
    }
    if m.m1 == nil ? trainedOnBinaryImages(file) : m.m1Binary { test = Binarization.fixed(test) }
    let start = Date()
    let error = m.classificationError(m.inputs(test))
    switch format {
    case .json:
      print(String(format: "{\"images\": %d, \"error\": %.6f}", test.count, error))
    case .text:
      print("images \(test.count)")
      print(String(format: "error %.4f (%d wrong)", error, Int((error * Double(test.count)).rounded())))
      print(String(format: "time %.1f s", Date().timeIntervalSince(start)))
    }
  }
}
