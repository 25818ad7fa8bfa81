import Engine
import Foundation
import Images
import NN
import TestSupport
import Testing

/// A DCGAN small enough for unit tests: 8×8 images, z of 8.
func tinyGAN(seed: UInt64 = 1) throws -> ImageGAN {
  try ImageGAN(
    configuration: .init(height: 8, width: 8, latentSize: 8, generatorChannels: [16, 8], discriminatorChannels: [8, 16]),
    seed: seed)
}

func temporaryPath(_ name: String) -> String {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gvae-gan-\(UUID().uuidString)")
  try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  return dir.appendingPathComponent(name).path
}

@Suite struct GANTests {
  @Test func shapesRangeAndDCGANInitialisation() throws {
    let gan = try ImageGAN(configuration: .init(height: 28, width: 28), seed: 3)
    var rng = SeededRandom(seed: 1)
    let x = gan.sample(count: 5, rng: &rng)
    #expect(x.count == 5 * 784 && x.allSatisfy { $0 >= 0 && $0 <= 1 })
    let tape = Tape(recording: false)
    #expect(gan.discriminate(tape.constant(Tensor(shape: [5, 784], storage: x)), tape: tape).shape == [5, 1])
    // N(0, 0.02) weights: the standard deviation of the largest tensor is 0.02 to 5%.
    let w = try #require(gan.generatorParameters.first { $0.name == "generator.deconv0.weight" }).value.storage
    let sd = (w.reduce(0) { $0 + Double($1 * $1) } / Double(w.count)).squareRoot()
    #expect(abs(sd - 0.02) < 0.001, "\(sd)")
    // Names are disjoint between the networks, and layers before batch norm have no bias.
    let names = Set(gan.parameters.map(\.name))
    #expect(names.count == gan.parameters.count && !names.contains("generator.deconv0.bias"))
    #expect(names.contains("generator.deconv1.bias") && names.contains("discriminator.conv0.bias"))
    #expect(throws: ImageModelError.self) { _ = try ImageGAN(configuration: .init(height: 25, width: 25), seed: 0) }
  }

  @Test func discriminatorLossFallsOnAFixedBatch() throws {
    let gan = try tinyGAN()
    let real = stripeImages(16, height: 8, width: 8).batch(Array(0..<16))
    var rng = SeededRandom(seed: 4)
    let fake = Tensor(shape: [16, 64], storage: gan.sample(count: 16, rng: &rng))
    let adam = Adam(parameters: gan.discriminatorParameters, hyperparameters: .init(learningRate: 2e-3, beta1: 0.5))
    var losses: [Float] = []
    for _ in 0..<40 {
      zeroGradients(gan.discriminatorParameters)
      let tape = Tape()
      let loss = ImageGAN.discriminatorLoss(
        real: gan.discriminate(tape.constant(real), tape: tape), fake: gan.discriminate(tape.constant(fake), tape: tape))
      tape.backward(loss)
      adam.step()
      losses.append(loss.value.scalar)
    }
    // log 4 at the start (D knows nothing), far less once it separates the two batches.
    #expect(abs(losses[0] - 1.386) < 0.1, "\(losses[0])")
    #expect(losses.last! < 0.3 * losses[0], "\(losses)")
  }

  @Test func generatorLossFallsAgainstAFixedDiscriminator() throws {
    let gan = try tinyGAN(seed: 2)
    let real = stripeImages(16, height: 8, width: 8).batch(Array(0..<16))
    var zrng = SeededRandom(seed: 5)
    let z = Tensor(randomNormal: [16, 8], rng: &zrng)
    // First teach D to tell the stripes from G's images, then train only G against it.
    let dAdam = Adam(parameters: gan.discriminatorParameters, hyperparameters: .init(learningRate: 2e-3, beta1: 0.5))
    for _ in 0..<30 {
      zeroGradients(gan.discriminatorParameters)
      let t = Tape()
      let fake = gan.generate(t.constant(z), tape: t, training: true).value
      let loss = ImageGAN.discriminatorLoss(
        real: gan.discriminate(t.constant(real), tape: t), fake: gan.discriminate(t.constant(fake), tape: t))
      t.backward(loss)
      dAdam.step()
    }
    let frozen = gan.discriminatorParameters.map(\.value)
    let gAdam = Adam(parameters: gan.generatorParameters, hyperparameters: .init(learningRate: 2e-3, beta1: 0.5))
    var losses: [Float] = []
    for _ in 0..<30 {
      zeroGradients(gan.parameters)
      let t = Tape()
      let loss = ImageGAN.generatorLoss(fake: gan.discriminate(gan.generate(t.constant(z), tape: t, training: true), tape: t))
      t.backward(loss)
      gAdam.step()
      losses.append(loss.value.scalar)
    }
    #expect(gan.discriminatorParameters.map(\.value) == frozen)
    #expect(losses[0] > 1, "D should reject G's images at first: \(losses[0])")
    #expect(losses.last! < 0.5 * losses[0], "\(losses)")
  }

  /// The generator loss's gradient reaches the latents through D and G (batch norm included).
  @Test func gradientThroughBothNetworksMatchesFiniteDifferences() throws {
    let gan = try tinyGAN(seed: 6)
    var rng = SeededRandom(seed: 8)
    let z = Tensor(randomNormal: [4, 8], rng: &rng)
    // Larger weights than N(0, 0.02), so that every layer's term contributes visibly.
    for p in gan.parameters where p.name.hasSuffix(".weight") {
      p.value = Tensor(randomNormal: p.value.shape, std: 0.3, rng: &rng)
    }
    func loss(_ z: Tensor) -> Double {
      let t = Tape(recording: false)
      let fake = gan.generate(t.constant(z), tape: t, training: true)
      return Double(ImageGAN.generatorLoss(fake: gan.discriminate(fake, tape: t)).value.scalar)
    }
    zeroGradients(gan.parameters)
    let tape = Tape()
    let zv = tape.variable(z)
    tape.backward(ImageGAN.generatorLoss(fake: gan.discriminate(gan.generate(zv, tape: tape, training: true), tape: tape)))
    let gz = try #require(tape.gradient(of: zv))
    // Each entry against central differences at two step sizes: a ReLU kink inside ±h spoils
    // one of them, a wrong or missing term spoils both.
    func agrees(_ g: Float, _ numeric: (Float) -> Float) -> Bool {
      func close(_ n: Float) -> Bool { abs(g - n) / max(1e-2, abs(g), abs(n)) < 3e-2 }
      return close(numeric(1e-3)) || close(numeric(2.5e-4))
    }
    var bad: [String] = []
    var checked = 0
    for i in 0..<z.count {
      let ok = agrees(gz.storage[i]) { h in
        var plus = z, minus = z
        plus.storage[i] += h
        minus.storage[i] -= h
        return Float((loss(plus) - loss(minus)) / Double(2 * h))
      }
      if !ok { bad.append("z[\(i)]") }
      checked += 1
    }
    // Parameters of both networks: G's gradient flows back through D.
    for p in gan.parameters {
      for i in (0..<3).map({ $0 * p.value.count / 3 }) {
        let ok = agrees(p.gradient.storage[i]) { h in
          let v = p.value.storage[i]
          p.value.storage[i] = v + h
          let plus = loss(z)
          p.value.storage[i] = v - h
          let minus = loss(z)
          p.value.storage[i] = v
          return Float((plus - minus) / Double(2 * h))
        }
        if !ok { bad.append("\(p.name)[\(i)]") }
        checked += 1
      }
    }
    #expect(checked >= 60)
    #expect(bad.count * 20 <= checked, "\(bad.count) of \(checked) disagree: \(bad)")
  }

  func trainer(_ gan: ImageGAN, _ path: String, epochs: Int) throws -> GANTrainer {
    var s = GANTrainingSettings()
    s.epochs = epochs
    s.batchSize = 8
    s.seed = 3
    s.fixedSamples = 4
    return try GANTrainer(model: gan, settings: s, images: stripeImages(28, height: 8, width: 8), outputPath: path)
  }

  @Test func resumeIsExactAndTheModelFileRoundTrips() throws {
    let straightPath = temporaryPath("a.safetensors")
    let straight = try trainer(try tinyGAN(), straightPath, epochs: 3)
    #expect(try straight.run() == .finished)
    #expect(straight.state.step == 12 && straight.state.history.count == 3)

    let path = temporaryPath("b.safetensors")
    let first = try trainer(try tinyGAN(), path, epochs: 3)
    first.stopAfterEpoch = 1
    #expect(try first.run() == .stoppedAfterEpoch(1))
    let second = try trainer(try tinyGAN(seed: 99), path, epochs: 3)
    try second.resume()
    #expect(second.state.epoch == 1 && second.state.step == 4)
    #expect(try second.run() == .finished)
    for (a, b) in zip(straight.model.parameters + straight.model.buffers, second.model.parameters + second.model.buffers) {
      #expect(a.value == b.value, "\(a.name)")
    }
    func losses(_ t: GANTrainer) -> [[Double]] {
      t.state.history.map { [Double($0.step), $0.discriminatorLoss, $0.generatorLoss, $0.realScore, $0.fakeScore] }
    }
    #expect(losses(second) == losses(straight))

    let (loaded, file) = try ImageGAN.load(path: path)
    #expect(file.metadata["gvae.kind"] == "image-gan")
    #expect(loaded.sample(latents: second.fixedLatents) == second.fixedSamples())
    // The checkpoint is a GAN file too (with the Adam states beside the weights).
    #expect(try ImageGAN.load(path: path + ".checkpoint").model.configuration == loaded.configuration)
  }

  @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
    let path = temporaryPath("n.safetensors")
    let t = try trainer(try tinyGAN(), path, epochs: 3)
    t.injectNonFiniteAtStep = 6
    #expect {
      _ = try t.run()
    } throws: { e in
      guard case ImageTrainingError.nonFinite(let epoch, let step, let checkpoint) = e else { return false }
      return epoch == 1 && step == 6 && checkpoint == path + ".checkpoint"
    }
    // The checkpoint is the end of epoch 1, and resuming from it works.
    let again = try trainer(try tinyGAN(), path, epochs: 3)
    try again.resume()
    #expect(again.state.epoch == 1 && again.state.step == 4)
    #expect(String(describing: ImageTrainingError.nonFinite(epoch: 1, step: 6, checkpoint: "c")).contains("last good checkpoint is c"))
  }

  @Test func wrongKindsOfFilesAreRefusedByName() throws {
    let cpath = temporaryPath("c.safetensors")
    try ImageClassifier(configuration: .init(height: 8, width: 8, classes: 4, channels: [4, 8], hidden: 8), seed: 0)
      .save(to: cpath)
    #expect(throws: ImageModelError.wrongKind("\(cpath) is an image classifier model file, not an image GAN; train one with `gvae image gan train`")) {
      _ = try ImageGAN.load(path: cpath)
    }
    let gpath = temporaryPath("g.safetensors")
    try tinyGAN().save(to: gpath)
    #expect(throws: ImageModelError.wrongKind("\(gpath) is an image GAN model file, not an image classifier; train one with `gvae image classifier train`")) {
      _ = try ImageClassifier.load(path: gpath)
    }
    #expect(throws: ImageModelError.file("cannot read model file /nonexistent/x")) { _ = try ImageGAN.load(path: "/nonexistent/x") }
  }

  @Test func flipsMirrorEachImage() {
    let s = ImageSet(height: 2, width: 3, pixels: [1, 2, 3, 4, 5, 6], labels: [7])
    let f = s.withHorizontalFlips()
    #expect(f.count == 2 && f.pixels == [1, 2, 3, 4, 5, 6, 3, 2, 1, 6, 5, 4] && f.labels == [7, 7])
  }
}

@Suite struct ClassifierTests {
  func trainer(
    _ model: ImageClassifier, _ path: String, epochs: Int, settings: (inout ClassifierTrainingSettings) -> Void = { _ in }
  ) throws -> ClassifierTrainer {
    var s = ClassifierTrainingSettings()
    s.epochs = epochs
    s.batchSize = 10
    s.learningRate = 3e-3
    s.decay = 0.8
    s.seed = 4
    settings(&s)
    return try ClassifierTrainer(
      model: model, settings: s, train: stripeImages(43, height: 8, width: 8, seed: 1),
      test: stripeImages(12, height: 8, width: 8, seed: 2), outputPath: path)
  }

  func tinyClassifier(seed: UInt64 = 1) throws -> ImageClassifier {
    try ImageClassifier(configuration: .init(height: 8, width: 8, classes: 4, channels: [4, 8], hidden: 8, dropout: 0.3), seed: seed)
  }

  @Test func learnsATinySyntheticTaskAndRoundTrips() throws {
    let train = stripeImages(96, height: 8, width: 8, seed: 1)
    let test = stripeImages(40, height: 8, width: 8, seed: 2)
    let model = try ImageClassifier(
      configuration: .init(height: 8, width: 8, classes: 4, channels: [8, 16], hidden: 16, dropout: 0.1), seed: 1)
    let before = model.accuracy(test)
    var s = ClassifierTrainingSettings()
    s.epochs = 12
    s.batchSize = 16
    s.learningRate = 3e-3
    s.decay = 0.9
    s.shift = 0
    let path = temporaryPath("cls.safetensors")
    let t = try ClassifierTrainer(model: model, settings: s, train: train, test: test, outputPath: path)
    #expect(try t.run() == .finished)
    let records = t.state.history
    #expect(records.count == 12 && records.last?.step == 72)
    let after = try #require(records.last?.testAccuracy)
    #expect(before < 0.6 && after > 0.95, "accuracy \(before) → \(after)")
    #expect(records.last!.trainLoss < 0.5 * records[0].trainLoss)

    // The trainer wrote the model after the last epoch.
    let loaded = try ImageClassifier.load(path: path)
    #expect(loaded.predict(test.pixels, count: test.count) == model.predict(test.pixels, count: test.count))
    let f = loaded.features(test.pixels, count: test.count)
    #expect(f.count == test.count * 16 && f == model.features(test.pixels, count: test.count))
    let p = loaded.probabilities(Array(test.pixels.prefix(3 * 64)), count: 3)
    for i in 0..<3 { #expect(abs(p[(i * 4)..<(i * 4 + 4)].reduce(0, +) - 1) < 1e-5) }
    // The checkpoint is a classifier file too (Adam's state beside the weights).
    let fromCheckpoint = try ImageClassifier.load(path: path + ".checkpoint")
    #expect(fromCheckpoint.predict(test.pixels, count: test.count) == model.predict(test.pixels, count: test.count))
  }

  /// Stopped mid-epoch (Ctrl-C) and after an epoch (a kill), then resumed by fresh trainers
  /// from differently initialised models: the same weights and epoch records, bit for bit.
  @Test func resumeContinuesBitForBit() throws {
    let straight = try trainer(try tinyClassifier(), temporaryPath("a.safetensors"), epochs: 3)
    #expect(try straight.run() == .finished)
    #expect(straight.state.step == 15 && straight.state.history.count == 3)

    let path = temporaryPath("b.safetensors")
    let first = try trainer(try tinyClassifier(), path, epochs: 3)
    first.stopAfterEpoch = 1
    #expect(try first.run() == .stoppedAfterEpoch(1))
    let second = try trainer(try tinyClassifier(seed: 99), path, epochs: 3)
    try second.resume()
    #expect(second.state.epoch == 1 && second.state.step == 5)
    var batches = 0
    second.shouldStop = {
      batches += 1
      return batches == 2  // mid-epoch 2: the position, sums and random stream go in the checkpoint
    }
    #expect(try second.run() == .interrupted)
    let third = try trainer(try tinyClassifier(seed: 7), path, epochs: 3)
    try third.resume()
    #expect(third.state.epoch == 1 && third.state.batchInEpoch == 2 && third.state.step == 7)
    #expect(try third.run() == .finished)
    for (a, b) in zip(straight.model.parameters, third.model.parameters) { #expect(a.value == b.value, "\(a.name)") }
    func curve(_ t: ClassifierTrainer) -> [[Double?]] {
      t.state.history.map { [Double($0.step), $0.trainLoss, $0.trainAccuracy, $0.testAccuracy, Double($0.learningRate)] }
    }
    #expect(curve(third) == curve(straight))
  }

  @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
    let path = temporaryPath("n.safetensors")
    let t = try trainer(try tinyClassifier(), path, epochs: 3)
    t.injectNonFiniteAtStep = 7
    #expect {
      _ = try t.run()
    } throws: { e in
      guard case ImageTrainingError.nonFinite(let epoch, let step, let checkpoint) = e else { return false }
      return epoch == 1 && step == 7 && checkpoint == path + ".checkpoint"
    }
    // Nothing was written at the bad step: the checkpoint is the end of epoch 1, and it resumes.
    let again = try trainer(try tinyClassifier(), path, epochs: 3)
    try again.resume()
    #expect(again.state.epoch == 1 && again.state.step == 5)
  }

  @Test func resumeRefusesAnotherRun() throws {
    let path = temporaryPath("r.safetensors")
    let t = try trainer(try tinyClassifier(), path, epochs: 1)
    #expect(try t.run() == .finished)
    func refusal(_ t: ClassifierTrainer) -> String {
      do { try t.resume() } catch { return "\(error)" }
      return "resumed"
    }
    let other = try ImageClassifier(configuration: .init(height: 8, width: 8, classes: 4, channels: [4, 8], hidden: 9), seed: 1)
    #expect(refusal(try trainer(other, path, epochs: 2)).contains("holds a classifier with a different configuration"))
    #expect(refusal(try trainer(try tinyClassifier(), path, epochs: 2) { $0.seed = 5 }).contains("another --seed"))
    #expect(refusal(try trainer(try tinyClassifier(), path, epochs: 2) { $0.batchSize = 11 }).contains("another --seed"))
    // The learning rate may change on a resume.
    #expect(refusal(try trainer(try tinyClassifier(), path, epochs: 2) { $0.learningRate = 1e-4 }) == "resumed")
    let fewer = try ClassifierTrainer(
      model: try tinyClassifier(), settings: t.settings, train: stripeImages(40, height: 8, width: 8), test: nil, outputPath: path)
    #expect(refusal(fewer).contains("was written for 43 training images, this run has 40"))
    // Not a checkpoint, or not a classifier's.
    try Data("garbage".utf8).write(to: URL(fileURLWithPath: path + ".checkpoint"))
    #expect(refusal(try trainer(try tinyClassifier(), path, epochs: 2)).contains("safetensors"))
    try tinyGAN().save(to: path + ".checkpoint")
    #expect(refusal(try trainer(try tinyClassifier(), path, epochs: 2)).contains("not an image classifier checkpoint"))
  }

  @Test func trainingRefusesBadData() throws {
    let model = try ImageClassifier(configuration: .init(height: 8, width: 8, classes: 4, channels: [4], hidden: 4), seed: 0)
    let path = temporaryPath("bad.safetensors")
    func train(_ set: ImageSet) throws { _ = try ClassifierTrainer(model: model, settings: .init(), train: set, test: nil, outputPath: path) }
    var unlabelled = stripeImages(4, height: 8, width: 8)
    unlabelled.labels = nil
    #expect(throws: ImageTrainingError.self) { try train(unlabelled) }
    #expect(throws: ImageTrainingError.self) { try train(stripeImages(4, height: 4, width: 4)) }
    var wrong = stripeImages(4, height: 8, width: 8)
    wrong.labels = [0, 1, 2, 9]
    #expect(throws: ImageTrainingError.self) { try train(wrong) }
    // Configurations that cannot be built.
    #expect(throws: ImageModelError.self) {
      _ = try ImageClassifier(configuration: .init(height: 4, width: 4, channels: [4, 4, 4, 4, 4]), seed: 0)
    }
    #expect(throws: ImageModelError.self) { _ = try ImageClassifier(configuration: .init(height: 8, width: 8, classes: 1), seed: 0) }
  }
}

@Suite struct FrechetTests {
  /// `n` rows of `d` features: correlated Gaussian columns, plus `noise`·N(0, 1).
  func features(_ n: Int, _ d: Int, noise: Float, seed: UInt64) -> [Float] {
    var rng = SeededRandom(seed: seed)
    var out: [Float] = []
    for _ in 0..<n {
      let common = rng.nextNormal()
      for j in 0..<d { out.append(Float(j) * 0.1 + common * 0.5 + rng.nextNormal() * (1 + Float(j % 3))) }
    }
    var noiseRNG = SeededRandom(seed: seed ^ 77)
    return out.map { $0 + noise * noiseRNG.nextNormal() }
  }

  @Test func eigendecompositionReconstructsTheMatrix() {
    var rng = SeededRandom(seed: 3)
    let n = 9
    var a = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in i..<n { let v = Double(rng.nextNormal()); a[i * n + j] = v; a[j * n + i] = v } }
    let (l, v) = SymmetricEigen.decompose(a, n: n)
    var worst = 0.0
    for i in 0..<n {
      for j in 0..<n {
        var s = 0.0
        for k in 0..<n { s += v[i * n + k] * l[k] * v[j * n + k] }
        worst = max(worst, abs(s - a[i * n + j]))
        var dot = 0.0
        for k in 0..<n { dot += v[k * n + i] * v[k * n + j] }
        worst = max(worst, abs(dot - (i == j ? 1 : 0)))
      }
    }
    #expect(worst < 1e-10, "\(worst)")
    // The square root of a PSD matrix squares back to it.
    let cov = FeatureStatistics(features: features(50, 6, noise: 0, seed: 1), count: 50).covariance
    let r = SymmetricEigen.squareRoot(cov, n: 6)
    var err = 0.0
    for i in 0..<6 { for j in 0..<6 { var s = 0.0; for k in 0..<6 { s += r[i * 6 + k] * r[k * 6 + j] }; err = max(err, abs(s - cov[i * 6 + j])) } }
    #expect(err < 1e-9, "\(err)")
  }

  @Test func distanceOfASetWithItselfIsZeroAndGrowsWithNoise() {
    let base = features(400, 12, noise: 0, seed: 1)
    let a = FeatureStatistics(features: base, count: 400)
    #expect(SampleQuality.frechetDistance(a, a) < 1e-8)
    var previous = 0.0
    for noise: Float in [0.3, 1, 3] {
      let b = FeatureStatistics(features: features(400, 12, noise: noise, seed: 1), count: 400)
      let d = SampleQuality.frechetDistance(a, b)
      #expect(d > previous * 1.5 + 1e-3, "noise \(noise): \(d) after \(previous)")
      previous = d
    }
  }

  /// The same through a classifier's features, as `gvae image score` computes it: images
  /// against themselves give 0, and pixel noise moves the features further the more there is.
  @Test func scoreOfImagesAgainstThemselvesIsZeroAndGrowsWithPixelNoise() throws {
    let classifier = try ImageClassifier(configuration: .init(height: 8, width: 8, classes: 4, channels: [4, 8], hidden: 16), seed: 2)
    let set = stripeImages(200, height: 8, width: 8)
    let same = classifier.score(set.pixels, count: set.count, reference: set)
    #expect(try #require(same.frechetDistance) < 1e-6)
    var rng = SeededRandom(seed: 11)
    let noise = (0..<set.pixels.count).map { _ in rng.nextNormal() }
    var previous = 0.0
    for level: Float in [0.05, 0.2, 0.5] {
      let noisy = zip(set.pixels, noise).map { min(1, max(0, $0 + level * $1)) }
      let d = try #require(classifier.score(noisy, count: set.count, reference: set).frechetDistance)
      #expect(d > previous, "noise \(level): \(d) after \(previous)")
      previous = d
    }
  }

  @Test func diagonalCaseMatchesTheClosedForm() {
    // Independent columns: FD = Σ (μ₁ − μ₂)² + (σ₁ − σ₂)², from the sample statistics.
    var rng = SeededRandom(seed: 9)
    let n = 20_000
    var x: [Float] = []
    var y: [Float] = []
    for _ in 0..<n {
      x += [rng.nextNormal(), 2 * rng.nextNormal()]
      y += [1 + 3 * rng.nextNormal(), 2 * rng.nextNormal() - 1]
    }
    let a = FeatureStatistics(features: x, count: n)
    let b = FeatureStatistics(features: y, count: n)
    var expected = 0.0
    for j in 0..<2 {
      expected += pow(a.mean[j] - b.mean[j], 2)
      expected += pow(a.covariance[j * 3].squareRoot() - b.covariance[j * 3].squareRoot(), 2)
    }
    // Sample correlations are ~1/√n, not exactly 0: agreement to 1%.
    let d = SampleQuality.frechetDistance(a, b)
    #expect(abs(d - expected) < 0.01 * expected, "\(d) vs \(expected)")
    #expect(abs(d - 6) < 0.3)  // (0 − 1)² + (0 + 1)² + (1 − 3)² + (2 − 2)²
  }

  @Test func inceptionScoreAndHistogram() {
    // Confident and balanced over 4 classes: 4; the same distribution for every image: 1.
    let confident: [Float] = (0..<8).flatMap { i in (0..<4).map { $0 == i % 4 ? 1 : 0 } }
    #expect(abs(SampleQuality.inceptionScore(probabilities: confident, classes: 4) - 4) < 1e-9)
    let same = [Float](repeating: 0.25, count: 32)
    #expect(abs(SampleQuality.inceptionScore(probabilities: same, classes: 4) - 1) < 1e-9)
    let collapsed: [Float] = (0..<8).flatMap { _ in [Float(1), 0, 0, 0] }
    #expect(abs(SampleQuality.inceptionScore(probabilities: collapsed, classes: 4) - 1) < 1e-9)
    #expect(SampleQuality.labelHistogram([0, 3, 3, 1, 7], classes: 4) == [1, 1, 0, 2])
  }
}
