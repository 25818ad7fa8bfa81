// Image VAEs with a Bernoulli decoder on Engine/NN: fully connected and convolutional.
import Engine
import Foundation
import NN

/// The architecture of an image VAE, stored in its model file.
public struct ImageVAEConfiguration: Codable, Sendable, Equatable {
  public enum Architecture: String, Codable, Sendable, CaseIterable {
    /// Dense layers only (the IWAE paper's MNIST networks).
    case dense
    /// Stride-2 convolutions (kernel 4, padding 1) before the dense layers; the decoder
    /// mirrors them with transposed convolutions.
    case convolutional
  }

  public enum HiddenActivation: String, Codable, Sendable, CaseIterable {
    case tanh, relu, softplus
    var activation: Activation {
      switch self {
      case .tanh: .tanh
      case .relu: .relu
      case .softplus: .softplus
      }
    }
  }

  public var architecture: Architecture
  public var height: Int
  public var width: Int
  /// Encoder dense widths after the convolutions; the decoder uses them in reverse.
  public var hidden: [Int]
  public var latentSize: Int
  public var activation: HiddenActivation
  /// Output channels of each stride-2 convolution (convolutional only).
  public var channels: [Int]

  public init(
    architecture: Architecture, height: Int, width: Int, hidden: [Int], latentSize: Int,
    activation: HiddenActivation, channels: [Int] = []
  ) {
    self.architecture = architecture
    self.height = height
    self.width = width
    self.hidden = hidden
    self.latentSize = latentSize
    self.activation = activation
    self.channels = channels
  }

  public var pixels: Int { height * width }

  /// Spatial size and channels after the encoder's convolutions.
  var convolutionOutput: (channels: Int, height: Int, width: Int) {
    let f = 1 << channels.count
    return (channels.last ?? 1, height / f, width / f)
  }

  /// The flattened size the dense layers see first.
  var denseInput: Int {
    architecture == .dense ? pixels : convolutionOutput.0 * convolutionOutput.1 * convolutionOutput.2
  }

  /// Rejects sizes no model file of ours has and that would allocate absurdly, before any
  /// tensor exists.
  public func validate() throws(ImageModelError) {
    func bad(_ m: String) -> ImageModelError { .invalidConfiguration(m) }
    guard (1...4096).contains(height), (1...4096).contains(width), height * width <= 1 << 22 else {
      throw bad("image size \(height)×\(width) (each side 1…4096, at most 4 Mi pixels)")
    }
    guard (1...4096).contains(latentSize) else { throw bad("latent size \(latentSize) (1…4096)") }
    guard hidden.count <= 16, hidden.allSatisfy({ (1...65_536).contains($0) }) else {
      throw bad("hidden widths \(hidden) (at most 16 layers of 1…65536)")
    }
    switch architecture {
    case .dense:
      guard channels.isEmpty else { throw bad("a dense model has no convolution channels") }
    case .convolutional:
      guard (1...6).contains(channels.count), channels.allSatisfy({ (1...4096).contains($0) }) else {
        throw bad("convolution channels \(channels) (1…6 layers of 1…4096)")
      }
      let f = 1 << channels.count
      guard height % f == 0 && width % f == 0 else {
        throw bad(
          "a convolutional model with \(channels.count) stride-2 layers needs height and width divisible by \(f); the images are \(height)×\(width)")
      }
    }
    var widths = [denseInput] + hidden + [latentSize]
    if architecture == .convolutional { widths = [pixels] + widths }
    var total = 0.0
    for (a, b) in zip(widths, widths.dropFirst()) { total += 2 * Double(a) * Double(b + 1) }
    guard total < 1e9 else { throw bad("about \(Int(total)) parameters (limit 10⁹)") }
  }

  /// The presets: `iwae-1` (the IWAE paper's one-stochastic-layer MNIST model: 784–200–200–50,
  /// tanh), `conv` (two stride-2 convolutions of 32 and 64 channels, a dense layer of 256, 50
  /// latent dimensions, ReLU), `2d` (784–500–500–2, tanh: a latent plane to draw) and `m1`
  /// (784–500–500–50, softplus: Kingma et al. 2014's M1 for M1+M2).
  public static func preset(_ name: String, height: Int, width: Int) -> ImageVAEConfiguration? {
    switch name {
    case "iwae-1":
      return .init(
        architecture: .dense, height: height, width: width, hidden: [200, 200], latentSize: 50,
        activation: .tanh)
    case "conv":
      return .init(
        architecture: .convolutional, height: height, width: width, hidden: [256], latentSize: 50,
        activation: .relu, channels: [32, 64])
    case "2d":
      return .init(
        architecture: .dense, height: height, width: width, hidden: [500, 500], latentSize: 2,
        activation: .tanh)
    case "m1":
      return .init(
        architecture: .dense, height: height, width: width, hidden: [500, 500], latentSize: 50,
        activation: .softplus)
    default: return nil
    }
  }

  public static let presetNames = ["iwae-1", "conv", "2d", "m1"]
}

/// Errors of image-VAE model files and configurations.
public enum ImageModelError: Error, CustomStringConvertible, Equatable {
  case invalidConfiguration(String)
  case file(String)
  case wrongKind(String)

  public var description: String {
    switch self {
    case .invalidConfiguration(let m): return "invalid image model configuration: \(m)"
    case .file(let m): return m
    case .wrongKind(let m): return m
    }
  }
}

/// The encoder q(z|x) = N(μ(x), diag exp(logσ²(x))) and the Bernoulli decoder p(x|z).
///
/// Parameter names: `encoder.conv{i}`, `encoder.dense{i}`, `encoder.mean`,
/// `encoder.log_variance`, `decoder.dense{i}`, `decoder.project` (convolutional),
/// `decoder.deconv{i}`, `decoder.output` (dense), each with `.weight` and `.bias`.
public final class ImageVAE: @unchecked Sendable {
  public let configuration: ImageVAEConfiguration
  let encoderConvs: [Conv2D]
  let encoderDense: [Dense]
  let meanHead: Dense
  let logVarianceHead: Dense
  let decoderDense: [Dense]
  let decoderProject: Dense?
  let decoderConvs: [ConvTranspose2D]
  let decoderOutput: Dense?

  public init(configuration c: ImageVAEConfiguration, seed: UInt64) throws(ImageModelError) {
    try c.validate()
    configuration = c
    var rng = SeededRandom(seed: seed)
    let act = c.activation.activation
    var convs: [Conv2D] = []
    var inChannels = 1
    for (i, ch) in c.channels.enumerated() {
      convs.append(
        Conv2D(
          inputChannels: inChannels, outputChannels: ch, kernelSize: (4, 4), stride: (2, 2),
          padding: (1, 1), activation: act, name: "encoder.conv\(i)", rng: &rng))
      inChannels = ch
    }
    encoderConvs = convs
    var width = c.denseInput
    var dense: [Dense] = []
    for (i, h) in c.hidden.enumerated() {
      dense.append(
        Dense(inputSize: width, outputSize: h, activation: act, name: "encoder.dense\(i)", rng: &rng))
      width = h
    }
    encoderDense = dense
    meanHead = Dense(inputSize: width, outputSize: c.latentSize, name: "encoder.mean", rng: &rng)
    logVarianceHead = Dense(
      inputSize: width, outputSize: c.latentSize, name: "encoder.log_variance", rng: &rng)
    var decoder: [Dense] = []
    width = c.latentSize
    for (i, h) in c.hidden.reversed().enumerated() {
      decoder.append(
        Dense(inputSize: width, outputSize: h, activation: act, name: "decoder.dense\(i)", rng: &rng))
      width = h
    }
    decoderDense = decoder
    switch c.architecture {
    case .dense:
      decoderProject = nil
      decoderConvs = []
      decoderOutput = Dense(inputSize: width, outputSize: c.pixels, name: "decoder.output", rng: &rng)
    case .convolutional:
      decoderProject = Dense(
        inputSize: width, outputSize: c.denseInput, activation: act, name: "decoder.project",
        rng: &rng)
      var deconvs: [ConvTranspose2D] = []
      let chans = Array(c.channels.reversed()) + [1]
      for i in 0..<c.channels.count {
        let last = i == c.channels.count - 1
        deconvs.append(
          ConvTranspose2D(
            inputChannels: chans[i], outputChannels: chans[i + 1], kernelSize: (4, 4),
            stride: (2, 2), padding: (1, 1), activation: last ? .identity : act,
            name: "decoder.deconv\(i)", rng: &rng))
      }
      decoderConvs = deconvs
      decoderOutput = nil
    }
  }

  public var parameters: [Parameter] {
    var out: [Parameter] = []
    for l in encoderConvs { out += l.parameters }
    for l in encoderDense { out += l.parameters }
    out += meanHead.parameters + logVarianceHead.parameters
    for l in decoderDense { out += l.parameters }
    if let decoderProject { out += decoderProject.parameters }
    for l in decoderConvs { out += l.parameters }
    if let decoderOutput { out += decoderOutput.parameters }
    return out
  }

  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  /// μ and logσ² ([N, latent]) of images `x` ([N, height·width]).
  public func encode(_ x: Var, tape: Tape) -> (mean: Var, logVariance: Var) {
    let c = configuration
    var h = x
    if c.architecture == .convolutional {
      h = h.reshaped([x.shape[0], 1, c.height, c.width])
      for l in encoderConvs { h = l(h, tape: tape) }
      h = h.reshaped([x.shape[0], c.denseInput])
    }
    for l in encoderDense { h = l(h, tape: tape) }
    return (meanHead(h, tape: tape), logVarianceHead(h, tape: tape))
  }

  /// Bernoulli logits ([N, height·width]) of p(x|z) for latents `z` ([N, latent]).
  public func decodeLogits(_ z: Var, tape: Tape) -> Var {
    let c = configuration
    var h = z
    for l in decoderDense { h = l(h, tape: tape) }
    if let decoderOutput { return decoderOutput(h, tape: tape) }
    let n = z.shape[0]
    let o = c.convolutionOutput
    h = decoderProject!(h, tape: tape).reshaped([n, o.channels, o.height, o.width])
    for l in decoderConvs { h = l(h, tape: tape) }
    return h.reshaped([n, c.pixels])
  }
}
