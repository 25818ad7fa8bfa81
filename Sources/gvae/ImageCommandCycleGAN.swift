import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import Images
import NN

#if canImport(Glibc)
  import Glibc
#endif

/// `gvae image cyclegan …`: unpaired translation between two image domains.
struct ImageCycleGANCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cyclegan",
    abstract: "CycleGAN (Zhu et al. 2017) between two grey-image domains: train, translate, evaluate.",
    subcommands: [ImageCycleGANTrainCommand.self, ImageCycleGANTranslateCommand.self, ImageCycleGANEvaluateCommand.self])
}

extension CycleGAN.Direction: ExpressibleByArgument {}

extension CycleGANTrainingEvent: ReportedTrainerEvent {
  var reported: ReportedEvent<Record> {
    if case .batch(let e, let b, let n, let g, let rate) = self { return .batch(epoch: e, batch: b, batches: n, loss: g, rate: rate) }
    if case .epoch(let r) = self { return .epoch(r) }
    return .checkpoint
  }
}

/// A data set's training and test images resized (bilinearly) to `size`.
func loadCycleGANData(_ path: String, height: Int, width: Int) throws -> ImageData {
  var d: ImageData
  do { d = try ImageData.load(path) } catch { throw fail(error.description) }
  d.train = d.train.resized(height: height, width: width)
  d.test = d.test.resized(height: height, width: width)
  return d
}

func loadCycleGAN(_ path: String) throws -> CycleGAN {
  do { return try CycleGAN.load(path: path).model } catch { throw fail(error.description) }
}

struct ImageCycleGANTrainCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a CycleGAN between domain A (--data-a) and domain B (--data-b).",
    discussion: """
      Both data sets (MNIST-style directories, .npy arrays [n, h, w] in [0, 1], digits CSVs) are \
      resized bilinearly to --size × --size. Each step updates both generators (least-squares \
      adversarial loss + λ·cycle L1 + λ·--lambda-identity·identity L1) with Adam, then both \
      discriminators on fakes drawn through a pool of --pool-size past ones. An epoch is \
      max(|A|, |B|) unpaired pairs (--epoch-size to change). Beside MODEL (saved every epoch) it \
      writes MODEL.checkpoint (weights, both Adams, the pools; every epoch and every \
      --checkpoint-minutes) and MODEL.log.jsonl; the cycle errors of --held-out test images per \
      domain are logged every epoch. Ctrl-C saves a checkpoint and exits; --resume continues exactly. \
      Under `mpirun -np N` each rank trains its pairs of every batch (the fakes gathered so every \
      rank's pools see the whole batch, gradients summed): the same run as one process; only rank \
      0 writes. The batch must have at least N pairs (--batch-size).
      """)

  @Option(name: .customLong("data-a"), help: "Domain A data (directory or file).") var dataA: String
  @Option(name: .customLong("data-b"), help: "Domain B data (directory or file).") var dataB: String
  @Option(help: "Where to write the model (safetensors).") var output: String
  @Option(help: "Common image side: both domains are resized to size × size.") var size: Int = 16
  @Option(help: "Epochs.") var epochs: Int = 10
  @Option(name: .customLong("epoch-size"), help: "Image pairs per epoch (default max(|A|, |B|)).")
  var epochSize: Int = 0
  @Option(name: .customLong("batch-size"), help: "Image pairs per step.") var batchSize: Int = 1
  @Option(help: "Adam learning rate.") var lr: Float = 2e-4
  @Option(help: "Adam β1.") var beta1: Float = 0.5
  @Option(name: .customLong("lambda-cycle"), help: "Weight λ of the cycle-consistency L1 terms.")
  var lambdaCycle: Float = 10
  @Option(name: .customLong("lambda-identity"), help: "Identity terms' weight relative to λ.")
  var lambdaIdentity: Float = 0.5
  @Option(name: .customLong("pool-size"), help: "Past fakes kept per domain (0: none).") var poolSize: Int = 50
  @Option(name: .customLong("decay-epochs"), help: "Last epochs over which the learning rate falls linearly to 0.")
  var decayEpochs: Int = 0
  @Option(help: "Generator filters (ngf).") var filters: Int = 16
  @Option(name: .customLong("residual-blocks"), help: "Residual blocks of each generator.") var residualBlocks: Int = 4
  @Option(help: "Stride-2 convolutions of each generator.") var downsamplings: Int = 2
  @Option(name: .customLong("discriminator-filters"), help: "Discriminator filters (ndf).")
  var discriminatorFilters: Int = 16
  @Option(name: .customLong("discriminator-layers"), help: "Stride-2 convolutions of each discriminator.")
  var discriminatorLayers: Int = 2
  @Option(help: "Random seed (initialisation, batches, pools).") var seed: UInt64 = 0
  @Option(name: .customLong("limit-a"), help: "Use only the first N training images of A.") var limitA: Int?
  @Option(name: .customLong("limit-b"), help: "Use only the first N training images of B.") var limitB: Int?
  @Option(name: .customLong("held-out"), help: "Test images per domain whose cycle errors are logged each epoch.")
  var heldOut: Int = 200
  @OptionGroup var training: TrainingRunOptions
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads: Int?

  func validate() throws {
    guard (4...1024).contains(size) else { throw ValidationError("--size must be in 4…1024") }
    guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
    guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be in 1…10000") }
    guard epochSize >= 0 else { throw ValidationError("--epoch-size must be non-negative") }
    guard lr > 0 && lr.isFinite else { throw ValidationError("--lr must be positive") }
    guard beta1 >= 0 && beta1 < 1 else { throw ValidationError("--beta1 must be in [0, 1)") }
    guard lambdaCycle >= 0 && lambdaCycle.isFinite && lambdaIdentity >= 0 && lambdaIdentity.isFinite else {
      throw ValidationError("--lambda-cycle and --lambda-identity must be non-negative")
    }
    guard (0...100_000).contains(poolSize) else { throw ValidationError("--pool-size must be in 0…100000") }
    guard decayEpochs >= 0 && decayEpochs <= epochs else { throw ValidationError("--decay-epochs must be in 0…--epochs") }
    guard heldOut >= 0, training.maxMinutes >= 0, training.checkpointMinutes > 0 else {
      throw ValidationError("--held-out and --max-minutes must be non-negative, --checkpoint-minutes positive")
    }
    if let limitA, limitA < 1 { throw ValidationError("--limit-a must be at least 1") }
    if let limitB, limitB < 1 { throw ValidationError("--limit-b must be at least 1") }
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let config = CycleGANConfiguration(
      height: size, width: size, generatorFilters: filters, downsamplings: downsamplings,
      residualBlocks: residualBlocks, discriminatorFilters: discriminatorFilters,
      discriminatorLayers: discriminatorLayers)
    let model: CycleGAN
    do { model = try CycleGAN(configuration: config, seed: seed) } catch { throw fail(error.description) }
    let da = try loadCycleGANData(dataA, height: size, width: size)
    let db = try loadCycleGANData(dataB, height: size, width: size)
    var a = da.train
    var b = db.train
    if let limitA, limitA < a.count { a = a.subset(Array(0..<limitA)) }
    if let limitB, limitB < b.count { b = b.subset(Array(0..<limitB)) }
    let ha = da.test.subset(Array(0..<min(heldOut, da.test.count)))
    let hb = db.test.subset(Array(0..<min(heldOut, db.test.count)))

    var s = CycleGANTrainingSettings()
    s.batchSize = batchSize
    s.epochs = epochs
    s.epochSize = epochSize
    s.learningRate = lr
    s.beta1 = beta1
    s.lambdaCycle = lambdaCycle
    s.lambdaIdentity = lambdaIdentity
    s.poolSize = poolSize
    s.decayEpochs = decayEpochs
    s.seed = seed
    s.maxMinutes = training.maxMinutes
    s.checkpointMinutes = training.checkpointMinutes
    let trainer: CycleGANTrainer
    do {
      trainer = try CycleGANTrainer(
        model: model, settings: s, trainA: a, trainB: b, heldOutA: ha, heldOutB: hb, outputPath: output)
    } catch { throw fail("\(error)") }
    trainer.summaryExtras = [
      "data_a": dataA, "data_b": dataB, "layout_a": da.layout, "layout_b": db.layout,
      "resize": "bilinear to \(size)×\(size) from \(da.train.height)×\(da.train.width) (A) and \(db.train.height)×\(db.train.width) (B)",
    ]
    if training.resume { try resumeTrainer(trainer) }
    printError(
      "gvae: CycleGAN \(size)×\(size) (ngf \(filters), \(downsamplings) downsamplings, \(residualBlocks) residual blocks; ndf \(discriminatorFilters), \(discriminatorLayers) stride-2 layers): "
        + "\(model.parameterCount) parameters; A \(a.count) training / \(ha.count) held-out images, B \(b.count) / \(hb.count); "
        + "\(trainer.epochSize) pairs per epoch, batch \(batchSize)")

    // The model file holds the latest weights, also after a stop mid-epoch.
    try trainAndReport(trainer, output: output, epochs: epochs, latestWeightsOnStop: true) { r in
      String(
        format: "epoch %d: G %.4f (adv %.4f/%.4f, cycle %.4f/%.4f, identity %.4f), D_A %.4f, D_B %.4f; held-out cycle error A %@, B %@; %.1f pairs/s",
        r.epoch, r.generatorLoss, r.adversarialAB, r.adversarialBA, r.cycleA, r.cycleB, r.identity,
        r.discriminatorA, r.discriminatorB, r.heldOutCycleA.map { String(format: "%.4f", $0) } ?? "-",
        r.heldOutCycleB.map { String(format: "%.4f", $0) } ?? "-", r.pairsPerSecond)
    }
  }
}

struct ImageCycleGANTranslateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "translate",
    abstract: "Translate test images A → B (F) or B → A (G).",
    discussion: """
      The images are the test split of --data (MNIST's t10k files; every 10th image of a single \
      .npy/.csv file), resized to the model's size. A .png output is a grid of pairs, each \
      original beside its translation, --columns pairs per row; a .npy output holds the \
      translations, float32 [count, height, width] in [0, 1].
      """)

  @Option(help: "A CycleGAN model file.") var model: String
  @Option(help: "Data directory or file of the source domain.") var data: String
  @Option(help: "a-to-b or b-to-a.") var direction: CycleGAN.Direction
  @Option(help: "A .png (grid) or .npy file.") var output: String
  @Option(help: "Number of test images (the first N).") var count: Int = 32
  @Option(help: "Pairs per row of the grid.") var columns: Int = 8

  func validate() throws {
    guard (1...100_000).contains(count) else { throw ValidationError("--count must be in 1…100000") }
    guard columns >= 1 else { throw ValidationError("--columns must be at least 1") }
  }

  func run() throws {
    try checkImageOutput(output)
    let gan = try loadCycleGAN(model)
    let c = gan.configuration
    let d = try loadCycleGANData(data, height: c.height, width: c.width)
    let source = d.test.subset(Array(0..<min(count, d.test.count)))
    let n = source.count
    let translated = gan.translate(source.pixels, count: n, direction: direction)
    if output.hasSuffix(".npy") {
      try writeImages(translated, count: n, height: c.height, width: c.width, to: output)
    } else {
      let px = c.pixels
      var tiles: [Float] = []
      for i in 0..<n {
        tiles += source.pixels[(i * px)..<((i + 1) * px)]
        tiles += translated[(i * px)..<((i + 1) * px)]
      }
      try writeImages(tiles, count: 2 * n, height: c.height, width: c.width, to: output, columns: 2 * columns)
    }
    printError("gvae: wrote \(n) translations (\(direction.rawValue)) to \(output)")
  }
}

struct ImageCycleGANEvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Cycle reconstruction errors both ways and, with classifiers, label preservation.",
    discussion: """
      On the test split of each domain (resized to the model's size): cycle_error_a is the mean \
      L1 error per pixel (values in [0, 1]) of a against G(F(a)), cycle_error_b of b against \
      F(G(b)). With --classifier-b (an image classifier of domain B at the model's size, \
      `gvae image classifier train`), label_preservation_a_to_b is the fraction of test images a \
      whose translation F(a) it gives a's label; --classifier-a likewise for G(b). Each \
      classifier's accuracy on its own domain's real test images is printed beside it.
      """)

  @Option(help: "A CycleGAN model file.") var model: String
  @Option(name: .customLong("data-a"), help: "Domain A data.") var dataA: String
  @Option(name: .customLong("data-b"), help: "Domain B data.") var dataB: String
  @Option(name: .customLong("classifier-a"), help: "A classifier of domain A images (judges G(b)).")
  var classifierA: String?
  @Option(name: .customLong("classifier-b"), help: "A classifier of domain B images (judges F(a)).")
  var classifierB: String?
  @Option(help: "Use only the first N test images of each domain.") var limit: Int?
  @Option(help: "Output: text or json.") var format: OutputFormat = .text

  func validate() throws {
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  func loadClassifier(_ path: String, for c: CycleGANConfiguration, option: String) throws -> ImageClassifier {
    let k: ImageClassifier
    do { k = try ImageClassifier.load(path: path) } catch { throw fail("\(option): \(error)") }
    let kc = k.configuration
    guard kc.height == c.height && kc.width == c.width else {
      throw fail(
        "\(option) \(path) classifies \(kc.height)×\(kc.width) images, the CycleGAN's are \(c.height)×\(c.width); train it at that size")
    }
    return k
  }

  func run() throws {
    let gan = try loadCycleGAN(model)
    let c = gan.configuration
    // Classifiers first: a bad file fails before the translation work.
    let ka = try classifierA.map { try loadClassifier($0, for: c, option: "--classifier-a") }
    let kb = try classifierB.map { try loadClassifier($0, for: c, option: "--classifier-b") }
    var a = try loadCycleGANData(dataA, height: c.height, width: c.width).test
    var b = try loadCycleGANData(dataB, height: c.height, width: c.width).test
    if let limit {
      a = a.subset(Array(0..<min(limit, a.count)))
      b = b.subset(Array(0..<min(limit, b.count)))
    }
    for (k, set, option, data) in [(kb, a, "--classifier-b", dataA), (ka, b, "--classifier-a", dataB)] where k != nil {
      guard set.labels != nil else { throw fail("\(option) needs labels: the test images of \(data) have none") }
    }
    let start = Date()
    var fields: [(String, String)] = [
      ("images_a", String(a.count)), ("images_b", String(b.count)),
      ("cycle_error_a", String(format: "%.5f", gan.cycleError(a, from: .aToB))),
      ("cycle_error_b", String(format: "%.5f", gan.cycleError(b, from: .bToA))),
    ]
    if let kb, let p = gan.labelPreservation(a, direction: .aToB, classify: kb.predict) {
      fields.append(("label_preservation_a_to_b", String(format: "%.4f", p.fraction)))
      fields.append(("classifier_b_accuracy", String(format: "%.4f", kb.accuracy(b))))
    }
    if let ka, let p = gan.labelPreservation(b, direction: .bToA, classify: ka.predict) {
      fields.append(("label_preservation_b_to_a", String(format: "%.4f", p.fraction)))
      fields.append(("classifier_a_accuracy", String(format: "%.4f", ka.accuracy(a))))
    }
    switch format {
    case .json:
      print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    case .text:
      for (k, v) in fields { print("\(k) \(v)") }
      print(String(format: "time %.1f s", Date().timeIntervalSince(start)))
    }
  }
}
