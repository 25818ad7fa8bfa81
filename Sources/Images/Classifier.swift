// A small CNN classifier of grey images on Engine/NN: the quality yardstick of generated
// images (label histograms, inception-style score, Fréchet distance of its features).
import Engine
import Foundation
import NN

/// The sizes of an image classifier, stored in its model file.
public struct ImageClassifierConfiguration: Codable, Sendable, Equatable {
  public var height: Int
  public var width: Int
  public var classes: Int
  /// Output channels of each convolution: the first is 3×3 stride 1, the others 4×4 stride 2.
  public var channels: [Int]
  /// Width of the penultimate (feature) layer.
  public var hidden: Int
  /// Dropout on the features while training.
  public var dropout: Float

  public init(
    height: Int, width: Int, classes: Int = 10, channels: [Int] = [32, 64, 64], hidden: Int = 128,
    dropout: Float = 0.3
  ) {
    self.height = height
    self.width = width
    self.classes = classes
    self.channels = channels
    self.hidden = hidden
    self.dropout = dropout
  }

  public var pixels: Int { height * width }

  /// Spatial size after each convolution (PyTorch's floor formula).
  var convolutionSizes: [(Int, Int)] {
    var (h, w) = (height, width)
    var out: [(Int, Int)] = []
    for i in 0..<channels.count {
      if i > 0 {
        // A side shorter than the 4×4 kernel (padding included) leaves nothing; Swift's
        // division truncates towards zero, PyTorch's formula floors.
        h = h + 2 < 4 ? 0 : (h + 2 - 4) / 2 + 1
        w = w + 2 < 4 ? 0 : (w + 2 - 4) / 2 + 1
      }
      out.append((h, w))
    }
    return out
  }

  var flattened: Int {
    guard let last = convolutionSizes.last else { return pixels }
    return channels.last! * last.0 * last.1
  }

  public func validate() throws(ImageModelError) {
    func bad(_ m: String) -> ImageModelError { .invalidConfiguration("classifier: " + m) }
    guard (2...4096).contains(height), (2...4096).contains(width), height * width <= 1 << 22 else {
      throw bad("image size \(height)×\(width) (each side 2…4096, at most 4 Mi pixels)")
    }
    guard (2...1000).contains(classes) else { throw bad("\(classes) classes (2…1000)") }
    guard (1...6).contains(channels.count), channels.allSatisfy({ (1...1024).contains($0) }) else {
      throw bad("convolution channels \(channels) (1…6 layers of 1…1024)")
    }
    guard let last = convolutionSizes.last, last.0 >= 1, last.1 >= 1 else {
      throw bad("\(channels.count - 1) stride-2 convolutions are too many for \(height)×\(width) images")
    }
    guard (1...65_536).contains(hidden) else { throw bad("hidden width \(hidden) (1…65536)") }
    guard dropout >= 0 && dropout < 1 else { throw bad("dropout \(dropout) (0 ≤ rate < 1)") }
    guard Double(flattened) * Double(hidden) < 1e9 else { throw bad("too many parameters") }
  }
}

/// conv(3×3) → [conv(4×4, stride 2)]… → dense(hidden) (the features) → dense(classes), ReLU.
///
/// Parameter names: `conv{i}`, `hidden`, `output`, each with `.weight` and `.bias`.
public final class ImageClassifier: @unchecked Sendable {
  public static let kind = "image-classifier"
  public static let format = "image-classifier-1"
  public static let configurationKey = "gvae.image_classifier_configuration"

  public let configuration: ImageClassifierConfiguration
  let convs: [Conv2D]
  let hiddenLayer: Dense
  let output: Dense

  public init(configuration c: ImageClassifierConfiguration, seed: UInt64) throws(ImageModelError) {
    try c.validate()
    configuration = c
    var rng = SeededRandom(seed: seed)
    var layers: [Conv2D] = []
    var inChannels = 1
    for (i, ch) in c.channels.enumerated() {
      let first = i == 0
      layers.append(
        Conv2D(
          inputChannels: inChannels, outputChannels: ch, kernelSize: first ? (3, 3) : (4, 4),
          stride: first ? (1, 1) : (2, 2), padding: (1, 1), activation: .relu, name: "conv\(i)", rng: &rng))
      inChannels = ch
    }
    convs = layers
    hiddenLayer = Dense(inputSize: c.flattened, outputSize: c.hidden, activation: .relu, name: "hidden", rng: &rng)
    output = Dense(inputSize: c.hidden, outputSize: c.classes, name: "output", rng: &rng)
  }

  public var parameters: [Parameter] {
    convs.flatMap(\.parameters) + hiddenLayer.parameters + output.parameters
  }

  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  /// The penultimate layer ([N, hidden]) of images `x` ([N, height·width]).
  public func features(_ x: Var, tape: Tape) -> Var {
    let c = configuration
    var h = x.reshaped([x.shape[0], 1, c.height, c.width])
    for l in convs { h = l(h, tape: tape) }
    return hiddenLayer(h.reshaped([x.shape[0], c.flattened]), tape: tape)
  }

  /// Class logits [N, classes]; dropout on the features when `rng` is given (training).
  public func logits(_ x: Var, tape: Tape, dropoutRNG rng: inout SeededRandom?) -> Var {
    var f = features(x, tape: tape)
    if var r = rng, configuration.dropout > 0 {
      f = dropout(f, rate: configuration.dropout, rng: &r, training: true)
      rng = r
    }
    return output(f, tape: tape)
  }

  /// Class logits with the features multiplied by a given dropout mask ([N, hidden]).
  func logits(_ x: Var, tape: Tape, dropoutMask mask: Tensor?) -> Var {
    let f = features(x, tape: tape)
    return output(mask.map { f * tape.constant($0) } ?? f, tape: tape)
  }

  /// Runs `body` on chunks of at most 500 images without recording; returns the rows joined.
  func chunked(_ images: [Float], count: Int, _ body: (Var, Tape) -> Var) -> [Float] {
    let d = configuration.pixels
    precondition(images.count == count * d, "\(images.count) values for \(count) images of \(d) pixels")
    var out: [Float] = []
    for start in stride(from: 0, to: count, by: 500) {
      let m = min(500, count - start)
      let tape = Tape(recording: false)
      let x = tape.constant(Tensor(shape: [m, d], storage: Array(images[(start * d)..<((start + m) * d)])))
      out += body(x, tape).value.storage
    }
    return out
  }

  /// Penultimate-layer features, [count, hidden] flattened, of images [count, height·width]
  /// in [0, 1].
  public func features(_ images: [Float], count: Int) -> [Float] {
    chunked(images, count: count) { x, tape in features(x, tape: tape) }
  }

  /// p(y|x), [count, classes] flattened.
  public func probabilities(_ images: [Float], count: Int) -> [Float] {
    chunked(images, count: count) { x, tape in
      var none: SeededRandom? = nil
      return softmax(logits(x, tape: tape, dropoutRNG: &none), axis: -1)
    }
  }

  /// The most probable class of each image (the first on ties).
  public func predict(_ images: [Float], count: Int) -> [Int] {
    let k = configuration.classes
    let p = probabilities(images, count: count)
    return (0..<count).map { i in
      var best = 0
      for c in 1..<k where p[i * k + c] > p[i * k + best] { best = c }
      return best
    }
  }

  /// Fraction of `set`'s images whose predicted class is their label.
  public func accuracy(_ set: ImageSet) -> Double {
    guard let labels = set.labels, set.count > 0 else { return .nan }
    let p = predict(set.pixels, count: set.count)
    return Double(zip(p, labels).filter { $0 == $1 }.count) / Double(set.count)
  }

  // MARK: Files

  public func container(trainingSummary: String = "{}") -> SafeTensorsFile {
    var tensors: [String: Tensor] = [:]
    for p in parameters { tensors[p.name] = p.value }
    return SafeTensorsFile(
      tensors: tensors,
      metadata: [
        ImageVAE.kindKey: Self.kind, ImageVAE.formatKey: Self.format,
        Self.configurationKey: ImageVAE.json(configuration), ImageVAE.trainingKey: trainingSummary,
      ])
  }

  /// Saves atomically (temporary file + rename).
  public func save(to path: String, trainingSummary: String = "{}") throws(ImageModelError) {
    do { try container(trainingSummary: trainingSummary).write(to: URL(fileURLWithPath: path)) } catch {
      throw .file("cannot write \(path): \(error)")
    }
  }

  public static func load(path: String) throws(ImageModelError) -> ImageClassifier {
    let file = try readImageModelFile(path)
    guard file.metadata[ImageVAE.kindKey] == kind else {
      throw .wrongKind(wrongKindMessage(path, file, expected: "an image classifier", hint: "train one with `gvae image classifier train`"))
    }
    guard file.metadata[ImageVAE.formatKey] == format else {
      throw .file("\(path): format \(file.metadata[ImageVAE.formatKey] ?? "(none)"), this gvae reads \(format)")
    }
    guard let js = file.metadata[configurationKey],
      let c = try? JSONDecoder().decode(ImageClassifierConfiguration.self, from: Data(js.utf8))
    else { throw .file("\(path): the classifier configuration in the metadata is missing or malformed") }
    let model = try ImageClassifier(configuration: c, seed: 0)
    // A training checkpoint is read too: its Adam state is left aside.
    var weights = file
    weights.entries = file.entries.filter { !$0.key.hasPrefix(Checkpoint.optimizerPrefix) }
    do { try weights.load(into: model.parameters) } catch { throw .file("\(path): \(error)") }
    return model
  }
}

/// Reads a safetensors file, naming the path on failure.
func readImageModelFile(_ path: String) throws(ImageModelError) -> SafeTensorsFile {
  do { return try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch SafeTensorsError.io(_) {
    throw .file("cannot read model file \(path)")
  } catch {
    throw .file("\(path): not a valid model file (\(error))")
  }
}

/// "PATH is a … model file, not EXPECTED; HINT": what a file of another kind is, by its metadata.
func wrongKindMessage(_ path: String, _ file: SafeTensorsFile, expected: String, hint: String) -> String {
  let kinds = [
    ImageVAE.kind: "an image VAE", SSVAE.kind: "a semi-supervised VAE (M2)", ImageClassifier.kind: "an image classifier",
    "image-gan": "an image GAN", "image-cyclegan": "a CycleGAN",
  ]
  if let k = file.metadata[ImageVAE.kindKey] {
    return "\(path) is \(kinds[k] ?? "a '\(k)'") model file, not \(expected); \(hint)"
  }
  if file.metadata["gvae.grammar"] != nil || file.metadata["gvae.configuration"] != nil {
    return "\(path) is a Grammar VAE model file, not \(expected); \(hint)"
  }
  return "\(path) is not \(expected) model file (no \(ImageVAE.kindKey) metadata); \(hint)"
}
