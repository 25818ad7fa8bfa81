import ArgumentParser
import Engine
import Foundation
import Images
import NN

#if canImport(Glibc)
  import Glibc
#endif

/// `gvae image …`: generative models of grey images on the same engine.
struct ImageCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "image",
    abstract: "Image VAEs (MNIST idx, .npy, digits CSV): train, evaluate, sample, reconstruct; semi-supervised M2.",
    subcommands: [ImageVAECommand.self, ImageSSVAECommand.self, ImageGANCommand.self, ImageClassifierCommand.self, ImageScoreCommand.self, ImageCycleGANCommand.self])
}

struct ImageVAECommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vae",
    abstract: "Bernoulli VAEs trained by the ELBO or the IWAE bound.",
    subcommands: [
      ImageVAETrainCommand.self, ImageVAEEvaluateCommand.self, ImageVAESampleCommand.self,
      ImageVAEReconstructCommand.self, ImageVAEManifoldCommand.self,
    ])
}

/// Loads an image-VAE model file, or fails with the reason (a Grammar VAE file included).
func loadImageModel(_ path: String) throws -> (ImageVAE, SafeTensorsFile) {
  do { return try ImageVAE.load(path: path) } catch { throw fail(error.description) }
}

/// Loads a data set whose images have the model's size.
func loadImageData(_ path: String, for model: ImageVAE?) throws -> ImageData {
  let data: ImageData
  do { data = try ImageData.load(path) } catch { throw fail(error.description) }
  if let c = model?.configuration, c.height != data.test.height || c.width != data.test.width {
    throw fail(
      "\(path): the images are \(data.test.height)×\(data.test.width), the model is for \(c.height)×\(c.width)")
  }
  return data
}

/// Whether the model was trained on binarised images (from its training summary).
func trainedOnBinaryImages(_ file: SafeTensorsFile) -> Bool {
  !(file.metadata[ImageVAE.trainingKey]?.contains("\"binarization\":\"none\"") ?? false)
}

/// `count` images ([count, pixels] values in [0, 1]) to a .png grid or a .npy float32 array
/// [count, height, width]; anything else is an error before work is done.
func checkImageOutput(_ path: String) throws {
  guard path.hasSuffix(".png") || path.hasSuffix(".npy") else {
    throw fail("--output \(path): give a .png (grid) or .npy (float32 array) file name")
  }
}

func writeImages(
  _ values: [Float], count: Int, height: Int, width: Int, to path: String, columns: Int? = nil
) throws {
  do {
    if path.hasSuffix(".npy") {
      let bytes = NPYArray.encodeFloat32(shape: [count, height, width], values: values)
      try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    } else {
      let cols = columns ?? Int(Double(count).squareRoot().rounded(.up))
      try ImageGrid(images: values, count: count, height: height, width: width, columns: max(1, cols))
        .writePNG(path)
    }
  } catch { throw fail("cannot write \(path): \(error)") }
}

/// σ(logits) in place.
func sigmoidValues(_ t: Tensor) -> [Float] {
  var v = t.storage
  v.withUnsafeMutableBufferPointer { Kernels.sigmoid($0.baseAddress!, $0.baseAddress!, count: $0.count) }
  return v
}

struct ImageVAEEvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate",
    abstract: "Test-set ELBO and importance-weighted log p(x) (nats per image).",
    discussion: """
      The test set (MNIST's t10k files; every 10th image of a single .npy/.csv file) is \
      binarised once with seed 12345 when the model was trained on binarised images. The ELBO \
      is the mean log weight of the k samples, log p(x) the log of their mean weight; both \
      averaged over the test images. Images and samples are processed in chunks, so memory \
      does not grow with k.
      """)

  @Option(help: "An image VAE model file.") var model: String
  @Option(help: "Data directory or file (as for train).") var data: String
  @Option(name: .customLong("importance-samples"), help: "Samples per image (k).")
  var importanceSamples: Int = 5000
  @Option(help: "Evaluate only the first N test images (after --skip).") var limit: Int?
  @Option(help: "Skip the first N test images (to split an evaluation into parts).") var skip: Int = 0
  @Option(help: "Seed of the samples.") var seed: UInt64 = 0
  @Option(name: .customLong("image-batch"), help: "Test images per chunk.") var imageBatch: Int = 100
  @Option(
    name: .customLong("rows-per-pass"),
    help: "Decoder rows (images × samples) per pass; more costs memory and, past cache sizes, time.") var rowsPerPass: Int = 4096
  @Option(help: "Output: text or json.") var format: OutputFormat = .text
  @Option(
    name: .customLong("blas-threads"),
    help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else one per CPU).") var blasThreads: Int?

  func validate() throws {
    guard (1...1_000_000).contains(importanceSamples) else {
      throw ValidationError("--importance-samples must be in 1…1000000")
    }
    guard imageBatch >= 1 else { throw ValidationError("--image-batch must be at least 1") }
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    guard skip >= 0 else { throw ValidationError("--skip must be at least 0") }
    guard (1...10_000_000).contains(rowsPerPass) else {
      throw ValidationError("--rows-per-pass must be in 1…10000000")
    }
  }

  func run() throws {
    if let blasThreads { BLAS.setThreadCount(blasThreads) }
    let (vae, file) = try loadImageModel(model)
    let d = try loadImageData(data, for: vae)
    var test = d.test
    guard skip < test.count else {
      throw fail("--skip \(skip): the test set has only \(test.count) images")
    }
    // Binarised before the subset, so a part's images are those of the whole set.
    let binary = trainedOnBinaryImages(file)
    if binary { test = Binarization.fixed(test) }
    let end = min(test.count, skip + (limit ?? test.count))
    if skip > 0 || end < test.count { test = test.subset(Array(skip..<end)) }
    printError(
      "gvae: \(test.count) test images (\(d.testSplit))\(binary ? ", binarised once with seed \(Binarization.testSeed)" : ""), k = \(importanceSamples)")
    let start = Date()
    let tty = isatty(2) != 0
    var lastPrint = Date()
    let e = vae.estimateLogLikelihood(
      test, samples: importanceSamples, seed: seed, imageBatch: imageBatch, rowBudget: rowsPerPass,
      progress: { done in
        // A line every 30 s (rewritten in place on a terminal), with the time left.
        let now = Date()
        guard now.timeIntervalSince(lastPrint) >= (tty ? 0.5 : 30) || (tty && done == test.count) else { return }
        lastPrint = now
        let secs = now.timeIntervalSince(start)
        let left = Int(secs / Double(done) * Double(test.count - done))
        let line = String(
          format: "evaluate: %d/%d images, %.1f images/s, ETA %dm%02ds", done, test.count,
          Double(done) / max(secs, 1e-9), left / 60, left % 60)
        if tty { FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8)) } else { printError(line) }
      })
    if tty { FileHandle.standardError.write(Data("\n".utf8)) }
    switch format {
    case .json:
      print(String(format: "{\"images\": %d, \"elbo\": %.4f, \"log_likelihood\": %.4f}", e.images, e.elbo, e.logLikelihood))
    case .text:
      print("images \(e.images)")
      print(String(format: "elbo %.4f", e.elbo))
      print(String(format: "log_likelihood %.4f (k = %d)", e.logLikelihood, e.samples))
      print(String(format: "time %.1f s", Date().timeIntervalSince(start)))
    }
  }
}

struct ImageVAESampleCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sample",
    abstract: "Images from the prior: z ~ N(0, I), pixel means σ(logits) of p(x|z).")

  @Option(help: "An image VAE model file.") var model: String
  @Option(name: .short, help: "Number of images.") var n: Int = 64
  @Option(help: "A .png (grid) or .npy (float32 [n, height, width] in [0, 1]) file.") var output: String
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Option(help: "Grid columns (default: about √n).") var columns: Int?
  @Flag(help: "Draw binary pixels x ~ p(x|z) instead of the means.") var binary = false

  func validate() throws {
    guard (1...100_000).contains(n) else { throw ValidationError("-n must be in 1…100000") }
    if let columns, columns < 1 { throw ValidationError("--columns must be at least 1") }
  }

  func run() throws {
    try checkImageOutput(output)
    let (vae, _) = try loadImageModel(model)
    let c = vae.configuration
    var rng = SeededRandom(seed: seed)
    var values: [Float] = []
    for start in stride(from: 0, to: n, by: 1000) {
      let m = min(1000, n - start)
      let tape = Tape(recording: false)
      let z = tape.constant(Tensor(randomNormal: [m, c.latentSize], rng: &rng))
      values += sigmoidValues(vae.decodeLogits(z, tape: tape).value)
    }
    if binary { values = Binarization.sample(Tensor(shape: [values.count], storage: values), rng: &rng).storage }
    try writeImages(values, count: n, height: c.height, width: c.width, to: output, columns: columns)
    printError("gvae: wrote \(n) samples to \(output)")
  }
}

struct ImageVAEReconstructCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "reconstruct",
    abstract: "Test images and their reconstructions σ(decoder(μ(x))).",
    discussion: """
      A .png output shows rows of test images (binarised as in evaluate) each followed by a \
      row of their reconstructions; a .npy output holds the reconstructions [n, height, width].
      """)

  @Option(help: "An image VAE model file.") var model: String
  @Option(help: "Data directory or file.") var data: String
  @Option(name: .short, help: "Number of test images (the first n).") var n: Int = 32
  @Option(help: "A .png or .npy file.") var output: String
  @Option(help: "Images per row of the grid.") var columns: Int = 8

  func validate() throws {
    guard (1...100_000).contains(n) else { throw ValidationError("-n must be in 1…100000") }
    guard columns >= 1 else { throw ValidationError("--columns must be at least 1") }
  }

  func run() throws {
    try checkImageOutput(output)
    let (vae, file) = try loadImageModel(model)
    let d = try loadImageData(data, for: vae)
    var test = d.test.subset(Array(0..<min(n, d.test.count)))
    if trainedOnBinaryImages(file) { test = Binarization.fixed(test) }
    let c = vae.configuration
    let tape = Tape(recording: false)
    let x = test.batch(Array(0..<test.count))
    let recon = sigmoidValues(vae.decodeLogits(vae.encode(tape.constant(x), tape: tape).mean, tape: tape).value)
    if output.hasSuffix(".npy") {
      try writeImages(recon, count: test.count, height: c.height, width: c.width, to: output)
    } else {
      // Rows of originals, each followed by the row of their reconstructions.
      var tiles: [Float] = []
      var count = 0
      let d = c.pixels
      for start in stride(from: 0, to: test.count, by: columns) {
        let end = min(test.count, start + columns)
        for source in [test.pixels, recon] {
          for i in start..<(start + columns) {
            tiles += i < end ? Array(source[(i * d)..<((i + 1) * d)]) : [Float](repeating: 0.5, count: d)
            count += 1
          }
        }
      }
      try writeImages(tiles, count: count, height: c.height, width: c.width, to: output, columns: columns)
    }
    printError("gvae: wrote \(test.count) reconstructions to \(output)")
  }
}

struct ImageVAEManifoldCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "manifold",
    abstract: "The decoder's means over a grid of the 2-D latent plane (a model with 2 latent dimensions).",
    discussion: """
      The grid points are the normal quantiles of evenly spaced probabilities (Kingma & \
      Welling 2014, figure 4), so the picture covers the prior's mass.
      """)

  @Option(help: "An image VAE model file with a 2-D latent space (preset 2d).") var model: String
  @Option(help: "A .png file.") var output: String
  @Option(help: "Grid points per axis.") var steps: Int = 20

  func validate() throws {
    guard (2...200).contains(steps) else { throw ValidationError("--steps must be in 2…200") }
  }

  func run() throws {
    guard output.hasSuffix(".png") else { throw fail("--output \(output): give a .png file name") }
    let (vae, _) = try loadImageModel(model)
    let c = vae.configuration
    guard c.latentSize == 2 else {
      throw fail("\(model) has \(c.latentSize) latent dimensions; the manifold needs 2 (train with --preset 2d)")
    }
    let q = (0..<steps).map { normalQuantile((Double($0) + 0.5) / Double(steps)) }
    var z: [Float] = []
    for row in 0..<steps { for col in 0..<steps { z += [Float(q[col]), Float(q[steps - 1 - row])] } }
    let tape = Tape(recording: false)
    let values = sigmoidValues(
      vae.decodeLogits(tape.constant(Tensor(shape: [steps * steps, 2], storage: z)), tape: tape).value)
    do {
      try ImageGrid(
        images: values, count: steps * steps, height: c.height, width: c.width, columns: steps, border: 0
      ).writePNG(output)
    } catch { throw fail("cannot write \(output): \(error)") }
    printError("gvae: wrote a \(steps)×\(steps) manifold to \(output)")
  }
}

/// Φ⁻¹(p) by bisection on erfc (60 halvings: far below Float precision).
func normalQuantile(_ p: Double) -> Double {
  var lo = -40.0
  var hi = 40.0
  for _ in 0..<60 {
    let mid = (lo + hi) / 2
    if 0.5 * erfc(-mid / 2.0.squareRoot()) < p { lo = mid } else { hi = mid }
  }
  return (lo + hi) / 2
}
