import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import Images
import NN

#if canImport(Glibc)
  import Glibc
#endif

/// Batches and best models: the command's `onEvent` (batches also feed the loss plot).
extension ImageTrainingEvent: ReportedTrainerEvent {
  var reported: ReportedEvent<Record> {
    if case .epoch(let r) = self { return .epoch(r) }
    if case .checkpoint = self { return .checkpoint }
    return .other
  }
}

struct ImageVAETrainCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a Bernoulli VAE on grey images by the ELBO or the IWAE bound.",
    discussion: """
      --data is an MNIST-style directory (train-/t10k-images-idx3-ubyte, gzip accepted), a .npy \
      array [n, h, w] in [0, 1], a digits CSV, or a directory holding one. Training images are \
      binarised afresh every epoch (--no-binarize: used as they are); --validation-count of them \
      are held out (seeded), binarised once, to pick the best model. Beside MODEL it writes \
      MODEL.checkpoint (every epoch and every --checkpoint-minutes), MODEL.log.jsonl and \
      MODEL.loss.svg. Ctrl-C saves a checkpoint and exits; --resume continues exactly.
      """)

  @Option(help: "Data directory or file.") var data: String
  @Option(help: "Where to write the best model (safetensors).") var output: String
  @Option(help: "Architecture: iwae-1 (784–200–200–50, tanh), conv, 2d (a 2-D latent), or m1 (784–500–500–50, softplus: the M1 of M1+M2).")
  var preset: String = "iwae-1"
  @Option(help: "Epochs.") var epochs: Int = 100
  @Option(
    name: .customLong("importance-samples"),
    help: "Samples per image: 1 trains by the ELBO, k > 1 by the IWAE bound.") var importanceSamples: Int = 1
  @Option(name: .customLong("batch-size"), help: "Images per batch.") var batchSize: Int = 100
  @Option(help: "Adam learning rate.") var lr: Float = 1e-3
  @Option(help: "iwae (stage i: 3^i epochs at lr·10^(−i/7)) or constant.") var schedule: String = "iwae"
  @Option(help: "Latent size (default: the preset's).") var latent: Int?
  @Option(help: "Random seed (initialisation, split, shuffles, binarisation, noise).") var seed: UInt64 = 0
  @Option(name: .customLong("validation-count"), help: "Training images held out for validation.")
  var validationCount: Int = 1000
  @Option(help: "Use only the first N training images.") var limit: Int?
  @Flag(name: .customLong("no-binarize"), help: "Train on the pixel values, not Bernoulli draws.")
  var noBinarize = false
  @Option(help: "Clip the global gradient norm (0: off).") var clip: Float = 0
  @OptionGroup var training: TrainingRunOptions
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads: Int?

  func validate() throws {
    guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
    guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be in 1…100000") }
    guard (1...10_000).contains(importanceSamples) else {
      throw ValidationError("--importance-samples must be in 1…10000")
    }
    guard lr > 0 && lr.isFinite else { throw ValidationError("--lr must be positive") }
    guard ["iwae", "constant"].contains(schedule) else {
      throw ValidationError("--schedule must be iwae or constant")
    }
    guard ImageVAEConfiguration.presetNames.contains(preset) else {
      throw ValidationError("--preset must be one of \(ImageVAEConfiguration.presetNames.joined(separator: ", "))")
    }
    guard validationCount >= 0, clip >= 0, training.maxMinutes >= 0, training.checkpointMinutes > 0 else {
      throw ValidationError("--validation-count, --clip and --max-minutes must be non-negative")
    }
    if let latent, latent < 1 { throw ValidationError("--latent must be at least 1") }
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let d = try loadImageData(data, for: nil)
    var images = d.train
    if let limit, limit < images.count { images = images.subset(Array(0..<limit)) }
    var config = ImageVAEConfiguration.preset(preset, height: images.height, width: images.width)!
    if let latent { config.latentSize = latent }
    let vae: ImageVAE
    do { vae = try ImageVAE(configuration: config, seed: seed) } catch { throw fail(error.description) }

    var settings = ImageTrainingSettings()
    settings.epochs = epochs
    settings.batchSize = batchSize
    settings.learningRate = lr
    settings.schedule = schedule
    settings.seed = seed
    settings.importanceSamples = importanceSamples
    settings.validationCount = validationCount
    settings.binarize = !noBinarize
    settings.gradientClip = clip
    settings.maxMinutes = training.maxMinutes
    settings.checkpointMinutes = training.checkpointMinutes
    let trainer: ImageTrainer
    do { trainer = try ImageTrainer(model: vae, settings: settings, images: images, outputPath: output) } catch {
      throw fail("\(data): \(error)")
    }
    trainer.summaryExtras = [
      "data": data, "layout": d.layout, "test_split": d.testSplit, "preset": preset,
      "objective": importanceSamples == 1 ? "elbo" : "iwae-\(importanceSamples)",
    ]
    if training.resume { try resumeTrainer(trainer) }
    printError(
      "gvae: image VAE, preset \(preset) (\(config.architecture.rawValue), latent \(config.latentSize)): "
        + "\(vae.parameterCount) parameters, \(trainer.train.count) training / \(trainer.validation.count) validation images "
        + "\(images.height)×\(images.width), \(importanceSamples == 1 ? "ELBO" : "IWAE bound, k = \(importanceSamples)"), batch \(batchSize)")

    let svgPath = output + ".loss.svg"
    let reporter = ProgressReporter()
    var batchLosses: [(Double, Double)] = []
    try trainAndReport(
      trainer, output: output, epochs: epochs, progress: reporter,
      onEvent: { event in
        switch event {
        case .batch(let epoch, let batch, let batches, let loss, let rate):
          reporter.update(epoch: epoch, epochs: epochs, batch: batch, batches: batches, loss: loss, rate: rate)
          if batch % max(1, batches / 20) == 0 {
            batchLosses.append((Double(epoch) + Double(batch) / Double(batches), loss))
          }
        case .bestModel(let path, let loss):
          TrainingLog.append("{\"event\":\"best\",\"path\":\(jsonString(path)),\"loss\":\(loss)}", to: output + ".log.jsonl")
        case .epoch, .checkpoint:
          break
        }
      },
      finished: {
        String(
          format: "gvae: finished %d epochs in %.0f s; best validation loss %.4f; model: %@", trainer.state.epoch,
          trainer.state.elapsed, trainer.state.bestValidation, output)
      },
      epochLine: { r in
        // The Grammar VAE's plot: the record has the same field names.
        let history = trainer.state.history.compactMap {
          try? JSONDecoder().decode(EpochRecord.self, from: Data(encodeJSON($0).utf8))
        }
        try? TrainingLog.svg(history: history, batchLosses: batchLosses, title: "gvae image vae train: \(output) (−bound, nats)")
          .write(toFile: svgPath, atomically: true, encoding: .utf8)
        return String(
          format: "epoch %d: loss %.4f (recon %.4f, KL %.4f), validation %@, lr %.3g, %.0f images/s",
          r.epoch, r.trainLoss, r.trainReconstruction, r.trainKL,
          r.validationLoss.map { String(format: "%.4f", $0) } ?? "-", r.learningRate, r.rowsPerSecond)
      })
  }
}

func encodeJSON<T: Encodable>(_ value: T) -> String {
  let e = JSONEncoder()
  e.outputFormatting = [.sortedKeys]
  return String(decoding: (try? e.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
}
