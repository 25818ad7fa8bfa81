// DCGAN (Radford, Metz & Chintala 2016) for grey images on Engine/NN layers: a generator of
// transposed convolutions with batch norm and ReLU, a discriminator of stride-2 convolutions
// with leaky ReLU, the non-saturating loss.
import Engine
import Foundation
import NN

/// The sizes of a DCGAN, stored in its model file.
public struct ImageGANConfiguration: Codable, Sendable, Equatable {
  public var height: Int
  public var width: Int
  public var latentSize: Int
  /// Channels of the generator's first feature map (after the dense projection) and of each
  /// transposed convolution but the last, which outputs the image: [128, 64] is
  /// z → 128×(h/4)×(w/4) → 64×(h/2)×(w/2) → 1×h×w.
  public var generatorChannels: [Int]
  /// Output channels of each stride-2 convolution of the discriminator ([64, 128]: h/2, h/4).
  public var discriminatorChannels: [Int]

  public init(
    height: Int, width: Int, latentSize: Int = 100, generatorChannels: [Int] = [128, 64],
    discriminatorChannels: [Int] = [64, 128]
  ) {
    self.height = height
    self.width = width
    self.latentSize = latentSize
    self.generatorChannels = generatorChannels
    self.discriminatorChannels = discriminatorChannels
  }

  public var pixels: Int { height * width }

  var baseSize: (Int, Int) {
    let f = 1 << generatorChannels.count
    return (height / f, width / f)
  }

  var discriminatorOutput: Int {
    let f = 1 << discriminatorChannels.count
    return discriminatorChannels.last! * (height / f) * (width / f)
  }

  public func validate() throws(ImageModelError) {
    func bad(_ m: String) -> ImageModelError { .invalidConfiguration("DCGAN: " + m) }
    guard (2...4096).contains(height), (2...4096).contains(width), height * width <= 1 << 22 else {
      throw bad("image size \(height)×\(width) (each side 2…4096, at most 4 Mi pixels)")
    }
    guard (1...4096).contains(latentSize) else { throw bad("latent size \(latentSize) (1…4096)") }
    for (name, ch) in [("generator", generatorChannels), ("discriminator", discriminatorChannels)] {
      guard (1...6).contains(ch.count), ch.allSatisfy({ (1...4096).contains($0) }) else {
        throw bad("\(name) channels \(ch) (1…6 layers of 1…4096)")
      }
      let f = 1 << ch.count
      guard height % f == 0 && width % f == 0 else {
        throw bad(
          "\(ch.count) stride-2 \(name) layers need height and width divisible by \(f); the images are \(height)×\(width)")
      }
    }
    let (h0, w0) = baseSize
    let projection = Double(latentSize) * Double(generatorChannels[0] * h0 * w0)
    guard projection < 1e9, Double(discriminatorOutput) < 1e9 else { throw bad("too many parameters") }
  }
}

/// DCGAN weights: convolutions and dense layers N(0, 0.02), batch-norm scales N(1, 0.02),
/// biases 0 (Radford et al. 2016, §4; PyTorch's DCGAN example).
func dcganInitialize(_ layers: [Parameter], scales: [Parameter], rng: inout SeededRandom) {
  for p in layers { p.value = Tensor(randomNormal: p.value.shape, std: 0.02, rng: &rng) }
  for p in scales { p.value = Tensor(randomNormal: p.value.shape, mean: 1, std: 0.02, rng: &rng) }
}

/// The generator G(z) (pixels in [0, 1] by a sigmoid) and the discriminator D(x) (a logit).
///
/// Parameter names: `generator.project` (dense, no bias), `generator.project_bn`,
/// `generator.deconv{i}` (the last with a bias), `generator.bn{i}`; `discriminator.conv{i}`
/// (the first with a bias, the others followed by `discriminator.bn{i}`),
/// `discriminator.output`.
public final class ImageGAN: @unchecked Sendable {
  public static let kind = "image-gan"
  public static let format = "image-gan-1"
  public static let configurationKey = "gvae.image_gan_configuration"

  public let configuration: ImageGANConfiguration
  /// Synchronised batch norm under mpirun: every batch-norm layer's statistics are summed
  /// over the ranks, so each rank's shard is normalised as the whole batch would be.
  public var batchNormSum: SumAcrossReplicas? = nil
  let project: Dense
  let projectNorm: BatchNorm
  let deconvs: [ConvTranspose2D]
  let generatorNorms: [BatchNorm]
  let convs: [Conv2D]
  let discriminatorNorms: [BatchNorm?]
  let discriminatorOutput: Dense

  public init(configuration c: ImageGANConfiguration, seed: UInt64) throws(ImageModelError) {
    try c.validate()
    configuration = c
    var rng = SeededRandom(seed: seed)
    let (h0, w0) = c.baseSize
    let g = c.generatorChannels
    project = Dense(
      inputSize: c.latentSize, outputSize: g[0] * h0 * w0, useBias: false, name: "generator.project", rng: &rng)
    projectNorm = BatchNorm(featureCount: g[0] * h0 * w0, name: "generator.project_bn")
    var deconvs: [ConvTranspose2D] = []
    var norms: [BatchNorm] = []
    let outs = Array(g.dropFirst()) + [1]
    for i in 0..<g.count {
      let last = i == g.count - 1
      deconvs.append(
        ConvTranspose2D(
          inputChannels: g[i], outputChannels: outs[i], kernelSize: (4, 4), stride: (2, 2), padding: (1, 1),
          activation: last ? .sigmoid : .identity, useBias: last, name: "generator.deconv\(i)", rng: &rng))
      if !last { norms.append(BatchNorm(featureCount: outs[i], axis: 1, name: "generator.bn\(i)")) }
    }
    self.deconvs = deconvs
    generatorNorms = norms
    var convs: [Conv2D] = []
    var dnorms: [BatchNorm?] = []
    var inChannels = 1
    for (i, ch) in c.discriminatorChannels.enumerated() {
      // No batch norm on the first layer (Radford et al.): it sees the images themselves.
      let first = i == 0
      convs.append(
        Conv2D(
          inputChannels: inChannels, outputChannels: ch, kernelSize: (4, 4), stride: (2, 2), padding: (1, 1),
          activation: first ? .leakyRelu(slope: 0.2) : .identity, useBias: first, name: "discriminator.conv\(i)",
          rng: &rng))
      dnorms.append(first ? nil : BatchNorm(featureCount: ch, axis: 1, name: "discriminator.bn\(i)"))
      inChannels = ch
    }
    self.convs = convs
    discriminatorNorms = dnorms
    discriminatorOutput = Dense(inputSize: c.discriminatorOutput, outputSize: 1, name: "discriminator.output", rng: &rng)
    var initRNG = SeededRandom(seed: seed ^ 0xDC6A_4000)
    dcganInitialize(
      [project.weight] + deconvs.map(\.weight) + convs.map(\.weight) + [discriminatorOutput.weight],
      scales: ([projectNorm] + generatorNorms + discriminatorNorms.compactMap { $0 }).map(\.scale), rng: &initRNG)
  }

  public var generatorParameters: [Parameter] {
    project.parameters + projectNorm.parameters + deconvs.flatMap(\.parameters) + generatorNorms.flatMap(\.parameters)
  }

  public var discriminatorParameters: [Parameter] {
    convs.flatMap(\.parameters) + discriminatorNorms.compactMap { $0 }.flatMap(\.parameters)
      + discriminatorOutput.parameters
  }

  /// Batch-norm running statistics of both networks.
  public var buffers: [Parameter] {
    ([projectNorm] + generatorNorms + discriminatorNorms.compactMap { $0 }).flatMap(\.buffers)
  }

  public var parameters: [Parameter] { generatorParameters + discriminatorParameters }

  public var generatorParameterCount: Int { generatorParameters.reduce(0) { $0 + $1.value.count } }
  public var discriminatorParameterCount: Int { discriminatorParameters.reduce(0) { $0 + $1.value.count } }

  /// G(z): images [N, height·width] in [0, 1] from latents [N, latent]. `training`: batch
  /// statistics (and running-statistic updates); otherwise the running statistics.
  public func generate(_ z: Var, tape: Tape, training: Bool) -> Var {
    let c = configuration
    let n = z.shape[0]
    let (h0, w0) = c.baseSize
    let sum = training ? batchNormSum : nil
    var h = relu(projectNorm(project(z, tape: tape), tape: tape, training: training, sumAcross: sum))
    h = h.reshaped([n, c.generatorChannels[0], h0, w0])
    for (i, l) in deconvs.enumerated() {
      h = l(h, tape: tape)
      if i < generatorNorms.count { h = relu(generatorNorms[i](h, tape: tape, training: training, sumAcross: sum)) }
    }
    return h.reshaped([n, c.pixels])
  }

  /// D(x): one logit per image [N, 1] of images [N, height·width].
  public func discriminate(_ x: Var, tape: Tape, training: Bool = true) -> Var {
    let c = configuration
    let n = x.shape[0]
    let sum = training ? batchNormSum : nil
    var h = x.reshaped([n, 1, c.height, c.width])
    for (l, norm) in zip(convs, discriminatorNorms) {
      h = l(h, tape: tape)
      if let norm { h = leakyRelu(norm(h, tape: tape, training: training, sumAcross: sum), slope: 0.2) }
    }
    return discriminatorOutput(h.reshaped([n, c.discriminatorOutput]), tape: tape)
  }

  /// Images from latents drawn from `rng` (N(0, I)), running statistics, in chunks of 500.
  public func sample(count: Int, rng: inout SeededRandom) -> [Float] {
    var out: [Float] = []
    for start in stride(from: 0, to: count, by: 500) {
      let m = min(500, count - start)
      out += sample(latents: Tensor(randomNormal: [m, configuration.latentSize], rng: &rng))
    }
    return out
  }

  public func sample(latents: Tensor) -> [Float] {
    let tape = Tape(recording: false)
    return generate(tape.constant(latents), tape: tape, training: false).value.storage
  }

  /// The discriminator loss −log D(x) − log(1 − D(G(z))) (means over each batch) and the
  /// non-saturating generator loss −log D(G(z)), from logits, stably.
  ///
  /// `batch` (default: the rows given) divides the sums: a rank's share of a loss over a
  /// larger batch, whose shares add up to the whole batch's mean.
  public static func discriminatorLoss(real: Var, fake: Var, batch: Int? = nil) -> Var {
    guard let batch else {
      return binaryCrossEntropy(logits: real, targets: Tensor(repeating: 1, shape: real.shape))
        + binaryCrossEntropy(logits: fake, targets: Tensor(zeros: fake.shape))
    }
    let sum = binaryCrossEntropy(logits: real, targets: Tensor(repeating: 1, shape: real.shape), reduction: .sum)
      + binaryCrossEntropy(logits: fake, targets: Tensor(zeros: fake.shape), reduction: .sum)
    return sum * (1 / Float(batch))
  }

  public static func generatorLoss(fake: Var, batch: Int? = nil) -> Var {
    guard let batch else { return binaryCrossEntropy(logits: fake, targets: Tensor(repeating: 1, shape: fake.shape)) }
    return binaryCrossEntropy(logits: fake, targets: Tensor(repeating: 1, shape: fake.shape), reduction: .sum)
      * (1 / Float(batch))
  }

  // MARK: Files

  public func container(trainingSummary: String = "{}") -> SafeTensorsFile {
    var tensors: [String: Tensor] = [:]
    for p in parameters + buffers { tensors[p.name] = p.value }
    return SafeTensorsFile(
      tensors: tensors,
      metadata: [
        ImageVAE.kindKey: Self.kind, ImageVAE.formatKey: Self.format,
        Self.configurationKey: ImageVAE.json(configuration), ImageVAE.trainingKey: trainingSummary,
      ])
  }

  public func save(to path: String, trainingSummary: String = "{}") throws(ImageModelError) {
    do { try container(trainingSummary: trainingSummary).write(to: URL(fileURLWithPath: path)) } catch {
      throw .file("cannot write \(path): \(error)")
    }
  }

  /// Reads a GAN model file (or a GAN checkpoint); any other kind of file is refused by name.
  public static func load(path: String) throws(ImageModelError) -> (model: ImageGAN, file: SafeTensorsFile) {
    let file = try readImageModelFile(path)
    guard file.metadata[ImageVAE.kindKey] == kind else {
      throw .wrongKind(wrongKindMessage(path, file, expected: "an image GAN", hint: "train one with `gvae image gan train`"))
    }
    guard file.metadata[ImageVAE.formatKey] == format else {
      throw .file("\(path): format \(file.metadata[ImageVAE.formatKey] ?? "(none)"), this gvae reads \(format)")
    }
    guard let js = file.metadata[configurationKey],
      let c = try? JSONDecoder().decode(ImageGANConfiguration.self, from: Data(js.utf8))
    else { throw .file("\(path): the GAN configuration in the metadata is missing or malformed") }
    let model = try ImageGAN(configuration: c, seed: 0)
    do { try file.load(into: model.parameters + model.buffers, allowUnexpected: true) } catch {
      throw .file("\(path): \(error)")
    }
    return (model, file)
  }
}

// MARK: Augmentation for small data sets (resizing: Resize.swift)

extension ImageSet {
  /// The images followed by their mirror images (left–right), labels repeated.
  public func withHorizontalFlips() -> ImageSet {
    var out = pixels
    out.reserveCapacity(2 * pixels.count)
    for k in 0..<count {
      for y in 0..<height {
        let row = k * pixelsPerImage + y * width
        for x in 0..<width { out.append(pixels[row + width - 1 - x]) }
      }
    }
    return ImageSet(height: height, width: width, pixels: out, labels: labels.map { $0 + $0 })
  }
}
