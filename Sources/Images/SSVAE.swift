// The semi-supervised VAE M2 of Kingma, Rezende, Mohamed & Welling 2014 ("Semi-supervised
// learning with deep generative models"): the label y is a latent variable that is observed
// for a few images. q(y|x) is a softmax classifier, q(z|x,y) a diagonal Gaussian,
// p(x|y,z) Bernoulli, p(y) uniform, p(z) = N(0, I).
import Engine
import Foundation
import NN

/// The sizes of an M2 model, stored in its model file.
public struct SSVAEConfiguration: Codable, Sendable, Equatable {
  public var height: Int
  public var width: Int
  public var classes: Int
  /// Hidden widths of each of the three networks (classifier, encoder, decoder; the decoder
  /// uses them in reverse).
  public var hidden: [Int]
  public var latentSize: Int
  /// "m2": the networks see pixels and p(x|y,z) is Bernoulli. "m1+m2": they see the latent
  /// means of an M1 image VAE (height 1, width its latent size) and p(·|y,z) is a diagonal
  /// Gaussian over them (Kingma et al. 2014, §3.2 "stacked").
  public var input: String = "m2"
  /// "m1+m2": which of the M1's latent dimensions are the inputs (increasing); nil is all of
  /// them. Kingma et al.'s code keeps only the active ones (`SSVAE.activeDimensions`).
  public var m1Dimensions: [Int]? = nil

  public init(
    height: Int, width: Int, classes: Int, hidden: [Int] = [500], latentSize: Int = 50, input: String = "m2",
    m1Dimensions: [Int]? = nil
  ) {
    self.height = height
    self.width = width
    self.classes = classes
    self.hidden = hidden
    self.latentSize = latentSize
    self.input = input
    self.m1Dimensions = m1Dimensions
  }

  var gaussian: Bool { input == "m1+m2" }

  public var pixels: Int { height * width }

  public func validate() throws(ImageModelError) {
    func bad(_ m: String) -> ImageModelError { .invalidConfiguration(m) }
    guard (1...4096).contains(height), (1...4096).contains(width), height * width <= 1 << 22 else {
      throw bad("image size \(height)×\(width) (each side 1…4096, at most 4 Mi pixels)")
    }
    guard (2...1000).contains(classes) else { throw bad("\(classes) classes (2…1000)") }
    guard (1...4096).contains(latentSize) else { throw bad("latent size \(latentSize) (1…4096)") }
    guard (1...16).contains(hidden.count), hidden.allSatisfy({ (1...65_536).contains($0) }) else {
      throw bad("hidden widths \(hidden) (1…16 layers of 1…65536)")
    }
    guard input == "m2" || (input == "m1+m2" && height == 1) else {
      throw bad("input \(input) with \(height)×\(width) inputs (m2, or m1+m2 with height 1)")
    }
    if let dims = m1Dimensions {
      guard input == "m1+m2", dims.count == width, (dims.first ?? 0) >= 0, zip(dims, dims.dropFirst()).allSatisfy({ $0 < $1 })
      else { throw bad("M1 dimensions \(dims) for \(width) inputs (m1+m2 only; increasing, one per input)") }
    }
    let total = 3 * Double(pixels + classes) * Double(hidden[0] + 1) * 2
    guard total < 1e9 else { throw bad("about \(Int(total)) parameters (limit 10⁹)") }
  }
}

/// M2's three networks, softplus hidden layers as in the paper.
///
/// Parameter names: `classifier.dense{i}`, `classifier.output`, `encoder.dense{i}` (input
/// [x, onehot(y)]), `encoder.mean`, `encoder.log_variance`, `decoder.dense{i}` (input
/// [z, onehot(y)]), `decoder.output`, each with `.weight` and `.bias`.
public final class SSVAE: @unchecked Sendable {
  public let configuration: SSVAEConfiguration
  let classifier: [Dense]
  let classifierOutput: Dense
  let encoder: [Dense]
  let meanHead: Dense
  let logVarianceHead: Dense
  let decoder: [Dense]
  let decoderOutput: Dense
  /// The M1 image VAE whose latent means are this model's inputs ("m1+m2" only).
  public var m1: ImageVAE?
  public var m1Binary = true

  public init(configuration c: SSVAEConfiguration, seed: UInt64) throws(ImageModelError) {
    try c.validate()
    configuration = c
    var rng = SeededRandom(seed: seed)
    func stack(_ input: Int, _ widths: [Int], _ name: String) -> [Dense] {
      var w = input
      return widths.enumerated().map { i, h in
        defer { w = h }
        return Dense(inputSize: w, outputSize: h, name: "\(name).dense\(i)", rng: &rng)
      }
    }
    classifier = stack(c.pixels, c.hidden, "classifier")
    classifierOutput = Dense(inputSize: c.hidden.last!, outputSize: c.classes, name: "classifier.output", rng: &rng)
    encoder = stack(c.pixels + c.classes, c.hidden, "encoder")
    meanHead = Dense(inputSize: c.hidden.last!, outputSize: c.latentSize, name: "encoder.mean", rng: &rng)
    logVarianceHead = Dense(
      inputSize: c.hidden.last!, outputSize: c.latentSize, name: "encoder.log_variance", rng: &rng)
    decoder = stack(c.latentSize + c.classes, c.hidden.reversed(), "decoder")
    // Gaussian outputs: means, then log-variances.
    decoderOutput = Dense(
      inputSize: c.hidden.first!, outputSize: c.gaussian ? 2 * c.pixels : c.pixels, name: "decoder.output", rng: &rng)
  }

  public var parameters: [Parameter] {
    var out: [Parameter] = []
    for l in classifier { out += l.parameters }
    out += classifierOutput.parameters
    for l in encoder { out += l.parameters }
    out += meanHead.parameters + logVarianceHead.parameters
    for l in decoder { out += l.parameters }
    return out + decoderOutput.parameters
  }

  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  // Dense has no fused softplus; the Engine op is exact and its gradient is checked there.
  func mlp(_ layers: [Dense], _ x: Var, tape: Tape) -> Var {
    layers.reduce(x) { h, l in softplus(l(h, tape: tape)) }
  }

  /// Logits of q(y|x) ([N, classes]) for images `x` ([N, pixels]).
  public func classifierLogits(_ x: Var, tape: Tape) -> Var {
    classifierOutput(mlp(classifier, x, tape: tape), tape: tape)
  }

  /// The most probable class of each image.
  public func classify(_ x: Tensor) -> [Int] {
    let c = configuration.classes
    let tape = Tape(recording: false)
    let logits = classifierLogits(tape.constant(x), tape: tape).value
    return (0..<x.shape[0]).map { i in
      var best = 0
      for k in 1..<c where logits.storage[i * c + k] > logits.storage[i * c + best] { best = k }
      return best
    }
  }

  /// −L(x, y) per row ([N]): −log p(x|y,z) − log p(y) + KL(q(z|x,y) ‖ N(0, I)) with one
  /// reparameterised z and the analytic KL. `x` is [n, pixels] with n dividing N: row r uses
  /// image r mod n (how the unlabelled term tiles the batch once per class).
  func negativeBound(_ x: Tensor, labels: [Int], tape: Tape, rng: inout SeededRandom) -> (
    bound: Var, reconstruction: Var, kl: Var
  ) {
    let eps = Tensor(randomNormal: [labels.count, configuration.latentSize], rng: &rng)
    return negativeBound(x, labels: labels, tape: tape, noise: eps)
  }

  /// −L(x, y) per row with the reparameterisation noise `eps` ([N, latent]) given.
  func negativeBound(_ x: Tensor, labels: [Int], tape: Tape, noise eps: Tensor) -> (
    bound: Var, reconstruction: Var, kl: Var
  ) {
    let c = configuration
    let rows = labels.count
    let n = x.shape[0]
    precondition(n > 0 && rows % n == 0)
    let tiled =
      rows == n
      ? x
      : Tensor(shape: [rows, c.pixels]) { out in
        x.storage.withUnsafeBufferPointer { src in
          for k in 0..<(rows / n) {
            (out.baseAddress! + k * n * c.pixels).update(from: src.baseAddress!, count: n * c.pixels)
          }
        }
      }
    let y = tape.constant(oneHot(labels, depth: c.classes))
    let h = mlp(encoder, concat([tape.constant(tiled), y], axis: 1), tape: tape)
    let mean = meanHead(h, tape: tape)
    let logVariance = logVarianceHead(h, tape: tape)
    precondition(eps.shape == mean.shape, "noise \(eps.shape) for means \(mean.shape)")
    let z = mean + exp(logVariance * 0.5) * tape.constant(eps)
    let logits = decoderOutput(mlp(decoder, concat([z, y], axis: 1), tape: tape), tape: tape)
    let reconstruction: Var
    if c.gaussian {
      let d = c.pixels
      let shape = [rows / n, n, d]  // broadcast the n targets over the tiles
      let mean = slice(logits, axis: 1, range: 0..<d).reshaped(shape)
      let lv = slice(logits, axis: 1, range: d..<(2 * d)).reshaped(shape)
      reconstruction =
        diagonalGaussianLogDensity(tape.constant(x.reshaped([1, n, d])), mean: mean, logVariance: lv)
        .reshaped([rows]) * -1
    } else {
      reconstruction = bernoulliLogLikelihood(logits: logits, targets: x) * -1
    }
    // Per row, unlike NN's gaussianKLDivergence (a batch mean): q(y|x) weights each row.
    let kl = sum(square(mean) + exp(logVariance) - logVariance - 1, axes: [1]) * 0.5
    return (reconstruction + kl + Float(Foundation.log(Double(c.classes))), reconstruction, kl)
  }
}

/// How the three terms of M2's objective are weighted in a minibatch.
///
/// The paper's objective over the whole training set is
/// `J^α = Σ_labelled −L(x, y) + Σ_unlabelled −U(x) + α · E_labelled[−log q(y|x)]`. A step
/// sees a labelled and an unlabelled batch, so the unbiased estimate of `J^α / N` is
/// `(N_l/N)·mean −L + (N_u/N)·mean −U + (α/N)·mean −log q(y|x)`.
///
/// Default α = 0.1·N²/N_l, so the classification term weighs 0.1·N/N_l per-image bounds (59 for
/// MNIST with 100 labels), the scale common reimplementations use. Taken literally (α = 0.1·N,
/// weight 0.1), the 100 labels' cross-entropy is drowned by the bounds: on MNIST q(y|x) stayed
/// near chance (validation error 40.5% after 20 epochs, cross-entropy ~1.0), against 14.3% with
/// the default after 22 epochs (README, semi-supervised section).
public struct SSVAEWeights: Codable, Sendable, Equatable {
  public var labelled: Float
  public var unlabelled: Float
  public var classification: Float

  public init(labelled: Float, unlabelled: Float, classification: Float) {
    self.labelled = labelled
    self.unlabelled = unlabelled
    self.classification = classification
  }

  /// The weights for `labelledCount` labelled and `unlabelledCount` unlabelled images and α
  /// (nil: 0.1·N²/N_l, see above).
  public init(labelledCount: Int, unlabelledCount: Int, alpha: Double? = nil) {
    let n = Double(max(labelledCount + unlabelledCount, 1))
    let a = alpha ?? 0.1 * n * n / Double(max(labelledCount, 1))
    self.init(
      labelled: Float(Double(labelledCount) / n), unlabelled: Float(Double(unlabelledCount) / n),
      classification: Float(a / n))
  }
}

/// One step's loss and its terms (means per image, nats) for logs.
public struct SSVAEBatch {
  public var loss: Var
  /// Mean −L(x, y) over the labelled images.
  public var labelledBound: Double
  /// Mean −U(x) over the unlabelled images.
  public var unlabelledBound: Double
  /// Mean −log q(y|x) over the labelled images.
  public var crossEntropy: Double
  /// Correct q(y|x) argmaxes among the labelled images.
  public var labelledCorrect: Int
}

/// The reparameterisation noise of one step, drawn before the loss so that a rank's shard of
/// the batch can be given exactly the noise one process draws for its rows.
public struct SSVAENoise {
  /// [labelled rows, latent] for −L(x, y).
  public var labelled: Tensor
  /// [classes, unlabelled rows, latent] for −U(x): the unlabelled batch is tiled once per
  /// class, class-major.
  public var unlabelled: Tensor

  public init(labelled: Tensor, unlabelled: Tensor) {
    precondition(labelled.shape.count == 2 && unlabelled.shape.count == 3)
    self.labelled = labelled
    self.unlabelled = unlabelled
  }

  /// One step's noise for `labelled` and `unlabelled` images, drawn in the order the loss
  /// uses it (the labelled rows, then the unlabelled rows of every class).
  public init(labelled: Int, unlabelled: Int, configuration c: SSVAEConfiguration, rng: inout SeededRandom) {
    self.labelled = Tensor(randomNormal: [labelled, c.latentSize], rng: &rng)
    self.unlabelled = Tensor(randomNormal: [c.classes, unlabelled, c.latentSize], rng: &rng)
  }

  /// The noise of labelled rows `l` and unlabelled rows `u` (a rank's share of the batch).
  public func rows(labelled l: Range<Int>, unlabelled u: Range<Int>) -> SSVAENoise {
    let d = labelled.shape[1]
    let (k, n) = (unlabelled.shape[0], unlabelled.shape[1])
    var out: [Float] = []
    out.reserveCapacity(k * u.count * d)
    for y in 0..<k { out += unlabelled.storage[((y * n + u.lowerBound) * d)..<((y * n + u.upperBound) * d)] }
    return SSVAENoise(
      labelled: labelled.sliced(axis: 0, range: l), unlabelled: Tensor(shape: [k, u.count, d], storage: out))
  }
}

extension SSVAE {
  /// −U(x) per image ([n]): `Σ_y q(y|x)·(−L(x, y)) − H(q(y|x)) = Σ_y q(y|x)·(−L(x, y) + log q(y|x))`,
  /// the sum over classes done exactly (the batch tiled once per class, class-major).
  func negativeUnlabelledBound(_ x: Tensor, tape: Tape, noise eps: Tensor) -> Var {
    let n = x.shape[0]
    let k = configuration.classes
    let labels = (0..<(k * n)).map { $0 / n }
    let flat = eps.reshaped([k * n, configuration.latentSize])
    let negL = negativeBound(x, labels: labels, tape: tape, noise: flat).bound.reshaped([k, n])
    let logQ = transpose(logSoftmax(classifierLogits(tape.constant(x), tape: tape), axis: 1))  // [k, n]
    return sum(exp(logQ) * (negL + logQ), axes: [0])
  }

  /// The minibatch estimate of `J^α / N` (see `SSVAEWeights`). Either batch may be empty.
  public func loss(
    labelled x: Tensor, labels: [Int], unlabelled u: Tensor, weights w: SSVAEWeights, tape: Tape,
    rng: inout SeededRandom
  ) -> SSVAEBatch {
    let noise = SSVAENoise(labelled: labels.count, unlabelled: u.shape[0], configuration: configuration, rng: &rng)
    return loss(labelled: x, labels: labels, unlabelled: u, weights: w, noise: noise, tape: tape)
  }

  /// The same with the noise given. `batches` (default: the rows given) are the sizes of the
  /// labelled and unlabelled batches that the means are over: with a rank's share of a larger
  /// batch, every term and number of the result is that share's part, and the parts of all
  /// ranks add up to the whole batch's.
  public func loss(
    labelled x: Tensor, labels: [Int], unlabelled u: Tensor, weights w: SSVAEWeights, noise: SSVAENoise,
    batches: (labelled: Int, unlabelled: Int)? = nil, tape: Tape
  ) -> SSVAEBatch {
    precondition(x.shape[0] == labels.count)
    var terms: [Var] = []
    var out = SSVAEBatch(loss: tape.constant(Tensor(zeros: [])), labelledBound: 0, unlabelledBound: 0, crossEntropy: 0, labelledCorrect: 0)
    if !labels.isEmpty {
      let nl = Float(batches?.labelled ?? labels.count)
      let negL = negativeBound(x, labels: labels, tape: tape, noise: noise.labelled).bound
      let logits = classifierLogits(tape.constant(x), tape: tape)
      let ce = softmaxCrossEntropy(logits: logits, targets: labels, reduction: .sum)
      terms.append(sum(negL) * (w.labelled / nl))
      terms.append(ce * (w.classification / nl))
      out.labelledBound = Double(sum(negL).value.scalar) / Double(nl)
      out.crossEntropy = Double(ce.value.scalar) / Double(nl)
      let k = configuration.classes
      for (i, y) in labels.enumerated() {
        let row = logits.value.storage[(i * k)..<((i + 1) * k)]
        if row.firstIndex(of: row.max()!)! - i * k == y { out.labelledCorrect += 1 }
      }
    }
    if u.shape[0] > 0 {
      let nu = Float(batches?.unlabelled ?? u.shape[0])
      let negU = sum(negativeUnlabelledBound(u, tape: tape, noise: noise.unlabelled))
      terms.append(negU * (w.unlabelled / nu))
      out.unlabelledBound = Double(negU.value.scalar) / Double(nu)
    }
    if let first = terms.first { out.loss = terms.dropFirst().reduce(first, +) }
    return out
  }

  /// An M1 model's latent means of `images` as a set of 1 × latent "images" (labels kept),
  /// 1,000 at a time.
  /// `dimensions` keeps only those latent dimensions (nil: all).
  public static func features(_ m1: ImageVAE, _ images: ImageSet, dimensions: [Int]? = nil) -> ImageSet {
    let all = ImageSet(
      height: 1, width: m1.configuration.latentSize, pixels: posteriors(m1, images, logVariances: false).means,
      labels: images.labels)
    return dimensions.map { select(all, $0) } ?? all
  }

  /// The columns `dimensions` of a set of 1 × d feature rows.
  static func select(_ set: ImageSet, _ dimensions: [Int]) -> ImageSet {
    let d = set.width
    var out = [Float]()
    out.reserveCapacity(set.count * dimensions.count)
    for i in 0..<set.count { for j in dimensions { out.append(set.pixels[i * d + j]) } }
    return ImageSet(height: 1, width: dimensions.count, pixels: out, labels: set.labels)
  }

  /// The M1 latent dimensions whose means vary by at least `threshold` (standard deviation)
  /// over `features`; the others carry next to nothing, and a Gaussian p(·|y,z) would spend
  /// itself modelling their noise (Kingma et al.'s code drops them).
  public static func activeDimensions(_ features: ImageSet, threshold: Double = 0.1) -> [Int] {
    let d = features.width
    let n = Double(max(features.count, 1))
    return (0..<d).filter { j in
      var sum = 0.0
      var squares = 0.0
      for i in 0..<features.count {
        let v = Double(features.pixels[i * d + j])
        sum += v
        squares += v * v
      }
      let mean = sum / n
      return max(0, squares / n - mean * mean).squareRoot() >= threshold
    }
  }

  /// The M1's posterior means (and log-variances if asked) of `images`, 1,000 at a time.
  static func posteriors(_ m1: ImageVAE, _ images: ImageSet, logVariances: Bool) -> (means: [Float], logVariances: [Float]) {
    var means: [Float] = []
    var logVars: [Float] = []
    for start in stride(from: 0, to: images.count, by: 1000) {
      let tape = Tape(recording: false)
      let x = images.batch(Array(start..<min(images.count, start + 1000)))
      let q = m1.encode(tape.constant(x), tape: tape)
      means += q.mean.value.storage
      if logVariances { logVars += q.logVariance.value.storage }
    }
    return (means, logVars)
  }

  /// The M1 posterior of each image: its means (as `features`) and standard deviations, the
  /// latter zero on inactive dimensions (those whose means vary by less than 0.1 over the
  /// set, as Kingma et al.'s code drops them): a trainer draws its inputs from these.
  /// `dimensions` keeps only those latent dimensions (nil: all).
  public static func featureDistributions(_ m1: ImageVAE, _ images: ImageSet, dimensions: [Int]? = nil) -> (
    means: ImageSet, deviations: ImageSet
  ) {
    let (means, logVars) = posteriors(m1, images, logVariances: true)
    var deviations = logVars.map { expf(0.5 * $0) }
    let d = m1.configuration.latentSize
    let meanSet = ImageSet(height: 1, width: d, pixels: means, labels: images.labels)
    let active = Set(activeDimensions(meanSet))
    for j in 0..<d where !active.contains(j) {
      for i in 0..<images.count { deviations[i * d + j] = 0 }
    }
    let deviationSet = ImageSet(height: 1, width: d, pixels: deviations, labels: nil)
    guard let dimensions else { return (meanSet, deviationSet) }
    return (select(meanSet, dimensions), select(deviationSet, dimensions))
  }

  /// What the networks see: the images, or their M1 features.
  public func inputs(_ images: ImageSet) -> ImageSet {
    m1.map { Self.features($0, images, dimensions: configuration.m1Dimensions) } ?? images
  }

  /// The fraction of `images` (already `inputs`) whose q(y|x) argmax is not their label, in
  /// chunks of 1,000.
  public func classificationError(_ images: ImageSet) -> Double {
    guard let labels = images.labels, images.count > 0 else { return .nan }
    var wrong = 0
    for start in stride(from: 0, to: images.count, by: 1000) {
      let rows = Array(start..<min(images.count, start + 1000))
      for (r, p) in zip(rows, classify(images.batch(rows))) where p != labels[r] { wrong += 1 }
    }
    return Double(wrong) / Double(images.count)
  }
}

// MARK: Model files

extension SSVAE {
  public static let kind = "image-ssvae"
  public static let configurationKey = "gvae.ssvae_configuration"
  public static let format = "ssvae-1"
  static let m1Prefix = "m1."
  public static let m1ConfigurationKey = "gvae.m1_configuration"
  /// Whether the M1 was trained on binarised images (so its inputs are binarised too).
  public static let m1BinaryKey = "gvae.m1_binarized"

  public func container(trainingSummary: String = "{}") -> SafeTensorsFile {
    var tensors: [String: Tensor] = [:]
    for p in parameters { tensors[p.name] = p.value }
    var metadata = [
      ImageVAE.kindKey: Self.kind, ImageVAE.formatKey: Self.format,
      Self.configurationKey: ImageVAE.json(configuration), ImageVAE.trainingKey: trainingSummary,
    ]
    // The M1 travels inside the file, so evaluation needs nothing else.
    if let m1 {
      for p in m1.parameters { tensors[Self.m1Prefix + p.name] = p.value }
      metadata[Self.m1ConfigurationKey] = ImageVAE.json(m1.configuration)
      metadata[Self.m1BinaryKey] = m1Binary ? "true" : "false"
    }
    return SafeTensorsFile(tensors: tensors, metadata: metadata)
  }

  public func save(to path: String, trainingSummary: String = "{}") throws(ImageModelError) {
    do { try container(trainingSummary: trainingSummary).write(to: URL(fileURLWithPath: path)) } catch {
      throw .file("cannot write \(path): \(error)")
    }
  }

  /// Reads an M2 model file; an image VAE or Grammar VAE file is refused by name.
  public static func load(path: String) throws(ImageModelError) -> (model: SSVAE, file: SafeTensorsFile) {
    let file: SafeTensorsFile
    do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch SafeTensorsError.io(_) {
      throw .file("cannot read model file \(path)")
    } catch {
      throw .file("\(path): not a valid model file (\(error))")
    }
    guard file.metadata[ImageVAE.kindKey] == kind else {
      if file.metadata[ImageVAE.kindKey] == ImageVAE.kind {
        throw .wrongKind(
          "\(path) is an image VAE model file, not a semi-supervised VAE; use it with `gvae image vae`, or train one with `gvae image ssvae train`")
      }
      if file.metadata["gvae.grammar"] != nil || file.metadata["gvae.configuration"] != nil {
        throw .wrongKind("\(path) is a Grammar VAE model file, not a semi-supervised image VAE")
      }
      throw .wrongKind("\(path) is not a semi-supervised VAE model file (no \(ImageVAE.kindKey)=\(kind) metadata)")
    }
    guard file.metadata[ImageVAE.formatKey] == format else {
      throw .file("\(path): format \(file.metadata[ImageVAE.formatKey] ?? "(none)"), this gvae reads \(format)")
    }
    guard let js = file.metadata[configurationKey],
      let c = try? JSONDecoder().decode(SSVAEConfiguration.self, from: Data(js.utf8))
    else { throw .file("\(path): the configuration in the metadata is missing or malformed") }
    let model = try SSVAE(configuration: c, seed: 0)
    if c.gaussian {
      guard let mj = file.metadata[m1ConfigurationKey],
        let mc = try? JSONDecoder().decode(ImageVAEConfiguration.self, from: Data(mj.utf8)),
        c.m1Dimensions.map({ ($0.last ?? 0) < mc.latentSize }) ?? (mc.latentSize == c.pixels)
      else { throw .file("\(path): an m1+m2 model without a matching M1 configuration") }
      let m1 = try ImageVAE(configuration: mc, seed: 0)
      var inner: [String: Tensor] = [:]
      for (k, v) in file.tensors where k.hasPrefix(m1Prefix) { inner[String(k.dropFirst(m1Prefix.count))] = v }
      do { try SafeTensorsFile(tensors: inner, metadata: [:]).load(into: m1.parameters) } catch {
        throw .file("\(path): the M1 inside: \(error)")
      }
      model.m1 = m1
      model.m1Binary = file.metadata[m1BinaryKey] != "false"
    }
    do { try file.load(into: model.parameters, allowUnexpected: c.gaussian) } catch {
      throw .file("\(path): \(error)")
    }
    return (model, file)
  }
}
