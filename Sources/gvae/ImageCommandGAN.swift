import ArgumentParser
import Engine
import Foundation
import GrammarVAE
import Images
import NN

#if canImport(Glibc)
  import Glibc
#endif

struct ImageGANCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gan",
    abstract: "DCGAN (Radford et al. 2016) of grey images: train, sample.",
    subcommands: [ImageGANTrainCommand.self, ImageGANSampleCommand.self])
}

func loadGAN(_ path: String) throws -> ImageGAN {
  do { return try ImageGAN.load(path: path).model } catch { throw fail(error.description) }
}

extension GANTrainingEvent: ReportedTrainerEvent {
  /// Batches: GANProgress shows both losses (the command's `onEvent`).
  var reported: ReportedEvent<Record> {
    if case .epoch(let r) = self { return .epoch(r) }
    if case .checkpoint = self { return .checkpoint }
    return .other
  }
}

extension GANProgress: ProgressLine {}

struct ImageGANTrainCommand: ParsableCommand, RunsAsSeveralProcesses {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a DCGAN: the non-saturating loss, Adam (lr 2e-4, β1 0.5), weights N(0, 0.02).",
    discussion: """
      --data as for `gvae image vae train` (its training images; --all-images adds the test \
      images, or for a single .npy/.csv file takes every image in file order). --size resizes \
      (bilinear), --flip adds the mirror image of each. Generator: dense → C₀×(h/2ᵏ)×(w/2ᵏ), \
      then k 4×4 stride-2 transposed convolutions (--g-channels C₀,…), batch norm and ReLU, a \
      sigmoid output; discriminator: 4×4 stride-2 convolutions (--d-channels), batch norm \
      after the first, leaky ReLU 0.2, a dense logit. Beside MODEL: MODEL.checkpoint (both \
      networks and Adam states, every epoch and every --checkpoint-minutes), MODEL.log.jsonl, \
      and MODEL.samples/epoch-NNN.png, a grid of the same --grid latents after every epoch. \
      Ctrl-C saves a checkpoint; --resume continues exactly. A NaN or infinite loss stops \
      training with the last good checkpoint kept. Under `mpirun -np N` each rank trains its rows \
      of every batch (batch norm synchronised over the ranks, gradients summed): the same run as \
      one process; only rank 0 writes.
      """)

  @Option(help: "Data directory or file.") var data: String
  @Option(help: "Where to write the model (safetensors), after every epoch.") var output: String
  @Option(help: "Epochs.") var epochs: Int = 5
  @Option(name: .customLong("batch-size"), help: "Real images per step.") var batchSize: Int = 64
  @Option(help: "Adam learning rate of both networks.") var lr: Float = 2e-4
  @Option(help: "Adam β1.") var beta1: Float = 0.5
  @Option(help: "Latent size.") var latent: Int = 100
  @Option(name: .customLong("g-channels"), help: "Generator channels, comma-separated.") var gChannels: String = "128,64"
  @Option(name: .customLong("d-channels"), help: "Discriminator channels, comma-separated.") var dChannels: String = "64,128"
  @Option(help: "Resize the images to HxW (or N×N) first.") var size: String?
  @Flag(help: "Add each image's left–right mirror image.") var flip = false
  @Flag(name: .customLong("all-images"), help: "Train on every image, the test set's too.") var allImages = false
  @Option(help: "Use only the first N images (before --flip).") var limit: Int?
  @Option(help: "Random seed (initialisation, shuffles, latents).") var seed: UInt64 = 0
  @Option(help: "Images in the per-epoch sample grid.") var grid: Int = 64
  @OptionGroup var training: TrainingRunOptions
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads: Int?

  func validate() throws {
    guard (1...100_000).contains(epochs) else { throw ValidationError("--epochs must be in 1…100000") }
    guard (2...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be in 2…100000") }
    guard lr > 0 && lr.isFinite else { throw ValidationError("--lr must be positive") }
    guard beta1 >= 0 && beta1 < 1 else { throw ValidationError("--beta1 must be in [0, 1)") }
    guard (1...4096).contains(latent) else { throw ValidationError("--latent must be in 1…4096") }
    guard (1...1024).contains(grid) else { throw ValidationError("--grid must be in 1…1024") }
    guard training.maxMinutes >= 0 && training.maxMinutes.isFinite, training.checkpointMinutes > 0 else {
      throw ValidationError("--max-minutes must be non-negative and --checkpoint-minutes positive")
    }
    _ = try parseChannels(gChannels, option: "--g-channels")
    _ = try parseChannels(dChannels, option: "--d-channels")
    if let size { _ = try parseImageSize(size, option: "--size") }
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  /// The training images as the options ask.
  func images() throws -> (ImageSet, String) {
    var set: ImageSet
    var what: String
    if allImages && (data.hasSuffix(".npy") || data.hasSuffix(".npy.gz")) {
      do { set = try ImageSet.readNPY(path: data) } catch { throw fail(error.description) }
      what = "every image of \((data as NSString).lastPathComponent)"
    } else if allImages && (data.hasSuffix(".csv") || data.hasSuffix(".csv.gz")) {
      do { set = try ImageSet.readDigitsCSV(path: data) } catch { throw fail(error.description) }
      what = "every image of \((data as NSString).lastPathComponent)"
    } else {
      let d = try loadImageData(data, for: nil)
      set = d.train
      what = "training images"
      if allImages {
        set = ImageSet(height: set.height, width: set.width, pixels: set.pixels + d.test.pixels)
        what = "training and test images"
      }
    }
    if let limit, limit < set.count {
      set = set.subset(Array(0..<limit))
      what += ", the first \(limit)"
    }
    if let size {
      let (h, w) = try parseImageSize(size, option: "--size")
      if (h, w) != (set.height, set.width) {
        what += ", resized from \(set.height)×\(set.width)"
        set = set.resized(height: h, width: w)
      }
    }
    if flip {
      set = set.withHorizontalFlips()
      what += ", with mirror images"
    }
    return (set, what)
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let (images, what) = try images()
    let config = ImageGANConfiguration(
      height: images.height, width: images.width, latentSize: latent,
      generatorChannels: try parseChannels(gChannels, option: "--g-channels"),
      discriminatorChannels: try parseChannels(dChannels, option: "--d-channels"))
    let gan: ImageGAN
    do { gan = try ImageGAN(configuration: config, seed: seed) } catch { throw fail(error.description) }
    var settings = GANTrainingSettings()
    settings.epochs = epochs
    settings.batchSize = batchSize
    settings.learningRate = lr
    settings.beta1 = beta1
    settings.seed = seed
    settings.maxMinutes = training.maxMinutes
    settings.checkpointMinutes = training.checkpointMinutes
    settings.fixedSamples = grid
    let trainer: GANTrainer
    do { trainer = try GANTrainer(model: gan, settings: settings, images: images, outputPath: output) } catch {
      throw fail("\(data): \(error)")
    }
    trainer.summaryExtras = ["data": data, "images": what]
    if training.resume { try resumeTrainer(trainer) }
    printError(
      "gvae: DCGAN, generator \(config.generatorChannels.map(String.init).joined(separator: ",")) (\(gan.generatorParameterCount) parameters), "
        + "discriminator \(config.discriminatorChannels.map(String.init).joined(separator: ",")) (\(gan.discriminatorParameterCount)), "
        + "latent \(latent): \(images.count) images \(images.height)×\(images.width) (\(what)), batch \(batchSize)")

    let sampleDirectory = output + ".samples"
    let progress = GANProgress()
    var sampleError: String? = nil
    try trainAndReport(
      trainer, output: output, epochs: epochs, progress: progress,
      onEvent: { event in
        if case .batch(let epoch, let batch, let batches, let dl, let gl, let real, let fake, let rate) = event {
          progress.update(epoch: epoch, epochs: epochs, batch: batch, batches: batches, d: dl, g: gl, real: real, fake: fake, rate: rate)
        }
      },
      epochLine: { r in
        // The epoch's grid of the fixed latents, named in its line.
        let png = (sampleDirectory as NSString).appendingPathComponent(String(format: "epoch-%03d.png", r.epoch))
        do {
          try FileManager.default.createDirectory(atPath: sampleDirectory, withIntermediateDirectories: true)
          try writeImages(trainer.fixedSamples(), count: settings.fixedSamples, height: config.height, width: config.width, to: png)
        } catch { sampleError = "\(error)" }
        return String(
          format: "epoch %d: loss D %.4f, G %.4f, D(x) %.3f, D(G(z)) %.3f, %.0f images/s; samples %@", r.epoch,
          r.discriminatorLoss, r.generatorLoss, r.realScore, r.fakeScore, r.imagesPerSecond, png)
      })
    if let sampleError { printError("gvae: warning: a sample grid was not written: \(sampleError)") }
  }
}

/// Progress of GAN training: both losses and D's outputs, as PyTorch's DCGAN example prints.
final class GANProgress {
  let isTTY = isatty(2) != 0
  var lastPrint = Date.distantPast
  var pending = false
  var start = Date()
  var firstBatch = -1

  func update(
    epoch: Int, epochs: Int, batch: Int, batches: Int, d: Double, g: Double, real: Double, fake: Double, rate: Double
  ) {
    let now = Date()
    if firstBatch < 0 || batch <= firstBatch {
      firstBatch = batch - 1
      start = now
    }
    guard now.timeIntervalSince(lastPrint) >= (isTTY ? 0.2 : 30) || batch == batches else { return }
    lastPrint = now
    let done = batch - firstBatch
    let left = Int(now.timeIntervalSince(start) / Double(max(done, 1)) * Double(batches - batch))
    let eta = done < 2 ? "?" : "\(left / 60)m\(String(format: "%02d", left % 60))s"
    let line = String(
      format: "epoch %d/%d batch %d/%d loss D %.4f G %.4f D(x) %.3f D(G(z)) %.3f %.1f images/s ETA %@", epoch + 1, epochs,
      batch, batches, d, g, real, fake, rate, eta)
    if isTTY {
      FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
      pending = true
    } else {
      printError(line)
    }
  }

  func finishLine() {
    if pending { FileHandle.standardError.write(Data("\n".utf8)) }
    pending = false
  }
}

struct ImageGANSampleCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sample",
    abstract: "Images G(z), z ~ N(0, I), with the generator's running batch-norm statistics.")

  @Option(help: "A GAN model file (or its .checkpoint).") var model: String
  @Option(name: .short, help: "Number of images.") var n: Int = 64
  @Option(help: "A .png (grid) or .npy (float32 [n, height, width] in [0, 1]) file.") var output: String
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Grid columns (default: about √n).") var columns: Int?

  func validate() throws {
    guard (1...100_000).contains(n) else { throw ValidationError("-n must be in 1…100000") }
    if let columns, columns < 1 { throw ValidationError("--columns must be at least 1") }
  }

  func run() throws {
    try checkImageOutput(output)
    let gan = try loadGAN(model)
    let c = gan.configuration
    var rng = SeededRandom(seed: seed)
    let values = gan.sample(count: n, rng: &rng)
    try writeImages(values, count: n, height: c.height, width: c.width, to: output, columns: columns)
    printError("gvae: wrote \(n) samples to \(output)")
  }
}
