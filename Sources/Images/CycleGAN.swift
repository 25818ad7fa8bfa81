// CycleGAN (Zhu et al. 2017) for small grey images on Engine/NN: ResNet generators with
// instance normalisation and reflection padding, PatchGAN discriminators, the least-squares
// adversarial loss, cycle consistency and identity terms, and the pool of past fakes.
import Engine
import Foundation
import NN

/// The architecture of a CycleGAN, stored in its model file.
public struct CycleGANConfiguration: Codable, Sendable, Equatable {
  public var height: Int
  public var width: Int
  /// Channels of the generators' first convolution (ngf); doubled at each downsampling.
  public var generatorFilters: Int
  /// Stride-2 convolutions before the residual blocks (mirrored by transposed ones).
  public var downsamplings: Int
  public var residualBlocks: Int
  /// Channels of the discriminators' first convolution (ndf).
  public var discriminatorFilters: Int
  /// Stride-2 convolutions of the discriminators before their two stride-1 ones.
  public var discriminatorLayers: Int

  /// Defaults sized for 16×16 images: ngf 16, two downsamplings (16 → 8 → 4), four residual
  /// blocks at 4×4×64, ndf 16 and two stride-2 layers (2×2 patches; their 34-pixel receptive
  /// fields cover the whole 16×16 image, padding included).
  public init(
    height: Int, width: Int, generatorFilters: Int = 16, downsamplings: Int = 2, residualBlocks: Int = 4,
    discriminatorFilters: Int = 16, discriminatorLayers: Int = 2
  ) {
    self.height = height
    self.width = width
    self.generatorFilters = generatorFilters
    self.downsamplings = downsamplings
    self.residualBlocks = residualBlocks
    self.discriminatorFilters = discriminatorFilters
    self.discriminatorLayers = discriminatorLayers
  }

  public var pixels: Int { height * width }

  /// Rejects shapes the layers cannot take (reflection pads wider than the image, a
  /// discriminator with no output patch) before any tensor exists.
  public func validate() throws(CycleGANError) {
    func bad(_ m: String) -> CycleGANError { .invalidConfiguration(m) }
    guard (4...1024).contains(height), (4...1024).contains(width) else {
      throw bad("image size \(height)×\(width) (each side 4…1024)")
    }
    guard (1...256).contains(generatorFilters), (1...256).contains(discriminatorFilters) else {
      throw bad("filters \(generatorFilters)/\(discriminatorFilters) (1…256)")
    }
    guard (0...4).contains(downsamplings), (0...32).contains(residualBlocks), (1...5).contains(discriminatorLayers)
    else {
      throw bad(
        "downsamplings \(downsamplings) (0…4), residual blocks \(residualBlocks) (0…32), discriminator layers \(discriminatorLayers) (1…5)")
    }
    let f = 1 << downsamplings
    guard height % f == 0, width % f == 0, height / f >= 2, width / f >= 2 else {
      throw bad(
        "\(downsamplings) downsamplings need height and width divisible by \(f) with at least 2 pixels left; the images are \(height)×\(width)")
    }
    // Each stride-2 conv (k4, p1) halves (floor); the two stride-1 convs (k4, p1) take 1 each.
    var (h, w) = (height, width)
    for _ in 0..<discriminatorLayers {
      h /= 2
      w /= 2
    }
    guard h - 2 >= 1, w - 2 >= 1 else {
      throw bad("a discriminator with \(discriminatorLayers) stride-2 layers has no output patch on \(height)×\(width) images")
    }
  }

  /// Patches per image of a discriminator.
  public var patchShape: (Int, Int) {
    var (h, w) = (height, width)
    for _ in 0..<discriminatorLayers {
      h /= 2
      w /= 2
    }
    return (h - 2, w - 2)
  }
}

public enum CycleGANError: Error, CustomStringConvertible, Equatable {
  case invalidConfiguration(String)
  case file(String)
  case wrongKind(String)

  public var description: String {
    switch self {
    case .invalidConfiguration(let m): return "invalid CycleGAN configuration: \(m)"
    case .file(let m), .wrongKind(let m): return m
    }
  }
}

/// CycleGAN's initialisation: weights N(0, 0.02), biases 0.
func cycleGANInitialize(_ parameters: [Parameter], rng: inout SeededRandom) {
  for p in parameters {
    p.value = p.name.hasSuffix(".bias") ? Tensor(zeros: p.value.shape) : Tensor(randomNormal: p.value.shape, std: 0.02, rng: &rng)
  }
}

/// The ResNet generator of CycleGAN (Johnson et al. 2016): reflection pad 3 + 7×7 conv,
/// stride-2 3×3 convs, residual blocks (pad, 3×3, IN, ReLU, pad, 3×3, IN, + input),
/// transposed 3×3 convs back, reflection pad 3 + 7×7 conv and tanh. Instance norm (no affine)
/// and ReLU after every conv but the last; convs before a norm have no bias (it would cancel).
/// Images in and out are [N, 1, H, W] in [−1, 1].
public struct CycleGANGenerator {
  let first: Conv2D
  let downs: [Conv2D]
  let blocks: [(Conv2D, Conv2D)]
  let ups: [ConvTranspose2D]
  let last: Conv2D

  init(_ c: CycleGANConfiguration, name: String, rng: inout SeededRandom) {
    let ngf = c.generatorFilters
    first = Conv2D(
      inputChannels: 1, outputChannels: ngf, kernelSize: (7, 7), useBias: false, name: "\(name).first", rng: &rng)
    var ch = ngf
    var downs: [Conv2D] = []
    for i in 0..<c.downsamplings {
      downs.append(
        Conv2D(
          inputChannels: ch, outputChannels: 2 * ch, kernelSize: (3, 3), stride: (2, 2), padding: (1, 1),
          useBias: false, name: "\(name).down\(i)", rng: &rng))
      ch *= 2
    }
    self.downs = downs
    blocks = (0..<c.residualBlocks).map { i in
      (
        Conv2D(inputChannels: ch, outputChannels: ch, kernelSize: (3, 3), useBias: false, name: "\(name).block\(i).conv0", rng: &rng),
        Conv2D(inputChannels: ch, outputChannels: ch, kernelSize: (3, 3), useBias: false, name: "\(name).block\(i).conv1", rng: &rng)
      )
    }
    var ups: [ConvTranspose2D] = []
    for i in 0..<c.downsamplings {
      ups.append(
        ConvTranspose2D(
          inputChannels: ch, outputChannels: ch / 2, kernelSize: (3, 3), stride: (2, 2), padding: (1, 1),
          outputPadding: (1, 1), useBias: false, name: "\(name).up\(i)", rng: &rng))
      ch /= 2
    }
    self.ups = ups
    last = Conv2D(inputChannels: ngf, outputChannels: 1, kernelSize: (7, 7), name: "\(name).last", rng: &rng)
  }

  public var parameters: [Parameter] {
    var out = first.parameters
    for l in downs { out += l.parameters }
    for (a, b) in blocks { out += a.parameters + b.parameters }
    for l in ups { out += l.parameters }
    return out + last.parameters
  }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    var h = relu(instanceNorm(first(reflectionPad2D(x, padding: (3, 3)), tape: tape)))
    for l in downs { h = relu(instanceNorm(l(h, tape: tape))) }
    for (a, b) in blocks {
      let r = relu(instanceNorm(a(reflectionPad2D(h, padding: (1, 1)), tape: tape)))
      h = h + instanceNorm(b(reflectionPad2D(r, padding: (1, 1)), tape: tape))
    }
    for l in ups { h = relu(instanceNorm(l(h, tape: tape))) }
    return tanh(last(reflectionPad2D(h, padding: (3, 3)), tape: tape))
  }
}

/// The PatchGAN discriminator: 4×4 convs, stride 2 (`discriminatorLayers` of them, channels
/// doubling, instance norm after all but the first), then a stride-1 one and a stride-1
/// conv to one channel; leaky ReLU 0.2 between. Outputs a score per patch, [N, 1, h, w].
public struct CycleGANDiscriminator {
  let convs: [Conv2D]

  init(_ c: CycleGANConfiguration, name: String, rng: inout SeededRandom) {
    var convs: [Conv2D] = []
    var ch = 1
    var out = c.discriminatorFilters
    for i in 0..<c.discriminatorLayers {
      convs.append(
        Conv2D(
          inputChannels: ch, outputChannels: out, kernelSize: (4, 4), stride: (2, 2), padding: (1, 1),
          useBias: i == 0, name: "\(name).conv\(i)", rng: &rng))
      ch = out
      out = min(out * 2, 8 * c.discriminatorFilters)
    }
    convs.append(
      Conv2D(
        inputChannels: ch, outputChannels: out, kernelSize: (4, 4), padding: (1, 1), useBias: false,
        name: "\(name).conv\(c.discriminatorLayers)", rng: &rng))
    convs.append(
      Conv2D(
        inputChannels: out, outputChannels: 1, kernelSize: (4, 4), padding: (1, 1),
        name: "\(name).output", rng: &rng))
    self.convs = convs
  }

  public var parameters: [Parameter] { convs.flatMap(\.parameters) }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    var h = x
    for (i, l) in convs.dropLast().enumerated() {
      h = l(h, tape: tape)
      if i > 0 { h = instanceNorm(h) }
      h = leakyRelu(h, slope: 0.2)
    }
    return convs.last!(h, tape: tape)
  }
}

/// Least-squares GAN loss (Mao et al. 2017), CycleGAN's default: mean (D − target)².
///
/// `images` (default: the rows given) is the batch the mean is over: a rank's share of a
/// larger batch gives its part of the whole batch's mean (the parts add up to it).
public func leastSquaresLoss(_ scores: Var, target: Float, images: Int? = nil) -> Var {
  meanOverBatch(square(scores - target), images: images)
}

/// Mean absolute difference (over `images` images as `leastSquaresLoss`).
public func meanAbsoluteError(_ a: Var, _ b: Var, images: Int? = nil) -> Var {
  meanOverBatch(abs(a - b), images: images)
}

/// The mean of `x`, or its sum over `images` rows' worth of elements.
func meanOverBatch(_ x: Var, images: Int?) -> Var {
  guard let images else { return mean(x) }
  return sum(x) * (1 / Float(images * (x.value.count / max(x.shape[0], 1))))
}

/// The generators' objective of one batch and its parts (each a mean over the batch).
public struct CycleGANGeneratorLoss {
  public var total: Var
  /// (D_B(F(a)) − 1)² and (D_A(G(b)) − 1)².
  public var adversarialAB: Float
  public var adversarialBA: Float
  /// |G(F(a)) − a| and |F(G(b)) − b| (unweighted, in [−1, 1] units).
  public var cycleA: Float
  public var cycleB: Float
  /// |F(b) − b| and |G(a) − a| (unweighted; 0 when the identity weight is 0).
  public var identityA: Float
  public var identityB: Float
  /// The translations, for the discriminators' step.
  public var fakeB: Tensor
  public var fakeA: Tensor
}

/// Generators F: A → B and G: B → A, discriminators D_A and D_B.
///
/// Parameter names: `generator_ab.*` (F), `generator_ba.*` (G), `discriminator_a.*`,
/// `discriminator_b.*`, each layer's `.weight` (and `.bias` where it has one).
public final class CycleGAN: @unchecked Sendable {
  public let configuration: CycleGANConfiguration
  public let generatorAB: CycleGANGenerator
  public let generatorBA: CycleGANGenerator
  public let discriminatorA: CycleGANDiscriminator
  public let discriminatorB: CycleGANDiscriminator

  public init(configuration c: CycleGANConfiguration, seed: UInt64) throws(CycleGANError) {
    try c.validate()
    configuration = c
    var rng = SeededRandom(seed: seed)
    generatorAB = CycleGANGenerator(c, name: "generator_ab", rng: &rng)
    generatorBA = CycleGANGenerator(c, name: "generator_ba", rng: &rng)
    discriminatorA = CycleGANDiscriminator(c, name: "discriminator_a", rng: &rng)
    discriminatorB = CycleGANDiscriminator(c, name: "discriminator_b", rng: &rng)
    cycleGANInitialize(parameters, rng: &rng)
  }

  public var generatorParameters: [Parameter] { generatorAB.parameters + generatorBA.parameters }
  public var discriminatorParameters: [Parameter] { discriminatorA.parameters + discriminatorB.parameters }
  public var parameters: [Parameter] { generatorParameters + discriminatorParameters }
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  /// [N, H·W] pixels in [0, 1] → [N, 1, H, W] in [−1, 1], the networks' range.
  public func networkInput(_ x: Tensor) -> Tensor {
    x.map { 2 * $0 - 1 }.reshaped([x.shape[0], 1, configuration.height, configuration.width])
  }

  /// The generators' loss of a batch of `a` and `b` ([N, 1, H, W] in [−1, 1]):
  /// adversarial (LSGAN) + λ·cycle L1 both ways + λ·identityWeight·identity L1 both ways.
  /// `batch`: the means are over that many pairs (a rank's share of a larger batch).
  public func generatorLoss(
    a: Tensor, b: Tensor, lambda: Float, identityWeight: Float, batch: Int? = nil, tape: Tape
  ) -> CycleGANGeneratorLoss {
    let ra = tape.constant(a)
    let rb = tape.constant(b)
    let fakeB = generatorAB(ra, tape: tape)
    let recA = generatorBA(fakeB, tape: tape)
    let fakeA = generatorBA(rb, tape: tape)
    let recB = generatorAB(fakeA, tape: tape)
    let advAB = leastSquaresLoss(discriminatorB(fakeB, tape: tape), target: 1, images: batch)
    let advBA = leastSquaresLoss(discriminatorA(fakeA, tape: tape), target: 1, images: batch)
    let cycA = meanAbsoluteError(recA, ra, images: batch)
    let cycB = meanAbsoluteError(recB, rb, images: batch)
    var total = advAB + advBA + lambda * (cycA + cycB)
    var idA: Float = 0
    var idB: Float = 0
    if identityWeight > 0 {
      // F should leave a B image alone and G an A image (Taigman et al. 2017).
      let ia = meanAbsoluteError(generatorAB(rb, tape: tape), rb, images: batch)
      let ib = meanAbsoluteError(generatorBA(ra, tape: tape), ra, images: batch)
      total = total + (lambda * identityWeight) * (ia + ib)
      idA = ia.value.scalar
      idB = ib.value.scalar
    }
    return CycleGANGeneratorLoss(
      total: total, adversarialAB: advAB.value.scalar, adversarialBA: advBA.value.scalar,
      cycleA: cycA.value.scalar, cycleB: cycB.value.scalar, identityA: idA, identityB: idB,
      fakeB: fakeB.value, fakeA: fakeA.value)
  }

  /// A discriminator's LSGAN loss: ½[(D(real) − 1)² + D(fake)²], fakes as constants;
  /// `batch` as for `generatorLoss`.
  public func discriminatorLoss(
    _ d: CycleGANDiscriminator, real: Tensor, fake: Tensor, batch: Int? = nil, tape: Tape
  ) -> Var {
    0.5 * (leastSquaresLoss(d(tape.constant(real), tape: tape), target: 1, images: batch)
      + leastSquaresLoss(d(tape.constant(fake), tape: tape), target: 0, images: batch))
  }

  public enum Direction: String, Sendable, CaseIterable {
    case aToB = "a-to-b"
    case bToA = "b-to-a"
  }

  /// Translations of `images` ([count·H·W] in [0, 1]) in chunks: [count·H·W] in [0, 1].
  public func translate(_ images: [Float], count: Int, direction: Direction, chunk: Int = 100) -> [Float] {
    let d = configuration.pixels
    precondition(images.count == count * d)
    let g = direction == .aToB ? generatorAB : generatorBA
    var out: [Float] = []
    out.reserveCapacity(images.count)
    for start in stride(from: 0, to: count, by: chunk) {
      let n = min(chunk, count - start)
      let tape = Tape(recording: false)
      let x = Tensor(shape: [n, d], storage: Array(images[(start * d)..<((start + n) * d)]))
      out += g(tape.constant(networkInput(x)), tape: tape).value.storage.map { ($0 + 1) / 2 }
    }
    return out
  }

  /// Mean L1 error per pixel (in [0, 1] units) of `images` against their round trip:
  /// x vs G(F(x)) for domain A images (`from: .aToB`), y vs F(G(y)) for B images.
  public func cycleError(_ images: ImageSet, from direction: Direction, chunk: Int = 100) -> Double {
    guard images.count > 0 else { return .nan }
    let there = translate(images.pixels, count: images.count, direction: direction, chunk: chunk)
    let back = translate(there, count: images.count, direction: direction == .aToB ? .bToA : .aToB, chunk: chunk)
    var total = 0.0
    for (x, y) in zip(images.pixels, back) { total += Double(abs(x - y)) }
    return total / Double(images.pixels.count)
  }

  /// How often `classify` (a classifier of the target domain) gives a translated image the
  /// label of its source; nil without labels. Returns (fraction, images).
  public func labelPreservation(
    _ images: ImageSet, direction: Direction, classify: ([Float], Int) -> [Int]
  ) -> (fraction: Double, images: Int)? {
    guard let labels = images.labels, images.count > 0 else { return nil }
    let translated = translate(images.pixels, count: images.count, direction: direction)
    let predicted = classify(translated, images.count)
    let kept = zip(predicted, labels).filter { $0 == $1 }.count
    return (Double(kept) / Double(images.count), images.count)
  }
}

/// CycleGAN's buffer of past fakes (Shrivastava et al. 2017): until it holds `capacity`
/// images every fake is stored and returned; then each fake is, with probability ½,
/// swapped for a random stored one (which is returned) or else returned as it is. The
/// discriminators so see fakes of older generators too, which damps oscillation.
public struct ImagePool: Sendable, Equatable {
  public let capacity: Int
  public let imageSize: Int
  public private(set) var images: [[Float]] = []

  public init(capacity: Int, imageSize: Int) {
    self.capacity = capacity
    self.imageSize = imageSize
  }

  /// Restores a pool from its stored images (a checkpoint).
  public init(capacity: Int, imageSize: Int, images: [[Float]]) {
    precondition(images.count <= capacity && images.allSatisfy { $0.count == imageSize })
    self.init(capacity: capacity, imageSize: imageSize)
    self.images = images
  }

  /// The batch the discriminator sees for the fakes `batch` ([N, …], N·imageSize values).
  public mutating func query(_ batch: Tensor, rng: inout SeededRandom) -> Tensor {
    guard capacity > 0 else { return batch }
    let n = batch.count / imageSize
    var out = batch.storage
    for k in 0..<n {
      let image = Array(batch.storage[(k * imageSize)..<((k + 1) * imageSize)])
      if images.count < capacity {
        images.append(image)
      } else if rng.nextUniform() > 0.5 {
        let id = Int(rng.next() % UInt64(capacity))
        out.replaceSubrange((k * imageSize)..<((k + 1) * imageSize), with: images[id])
        images[id] = image
      }
    }
    return Tensor(shape: batch.shape, storage: out)
  }
}
