import Engine
import Foundation
@testable import Images
import NN
import Testing

@Suite struct SSVAETests {
  let tiny = SSVAEConfiguration(height: 2, width: 3, classes: 3, hidden: [4], latentSize: 2)

  /// Central differences of the whole M2 loss (labelled −L, unlabelled −U, α term) against
  /// every parameter's gradient, on a network small enough to check every element.
  /// The M1+M2 variant (a Gaussian p(·|y,z) over real-valued inputs) too.
  @Test(arguments: ["m2", "m1+m2"])
  func wholeLossGradientCheck(input: String) throws {
    var c = tiny
    if input == "m1+m2" { (c.height, c.width, c.input) = (1, 6, input) }
    let model = try SSVAE(configuration: c, seed: 7)
    var r = SeededRandom(seed: 3)
    var x = Binarization.sample(Tensor(randomUniform: [3, 6], low: 0, high: 1, rng: &r), rng: &r)
    var u = Binarization.sample(Tensor(randomUniform: [2, 6], low: 0, high: 1, rng: &r), rng: &r)
    if input == "m1+m2" {
      x = Tensor(randomNormal: [3, 6], rng: &r)
      u = Tensor(randomNormal: [2, 6], rng: &r)
    }
    let labels = [2, 0, 1]
    // Unequal weights so that a term with a wrong sign or scale shows.
    let w = SSVAEWeights(labelled: 0.3, unlabelled: 0.7, classification: 1.9)
    func run(_ tape: Tape) -> SSVAEBatch {
      var rng = SeededRandom(seed: 21)
      return model.loss(labelled: x, labels: labels, unlabelled: u, weights: w, tape: tape, rng: &rng)
    }
    zeroGradients(model.parameters)
    let tape = Tape()
    tape.backward(run(tape).loss)
    var checked = 0
    for p in model.parameters {
      for i in 0..<p.value.count {
        let h: Float = 1e-2
        let v = p.value.storage[i]
        p.value.storage[i] = v + h
        let plus = Double(run(Tape(recording: false)).loss.value.scalar)
        p.value.storage[i] = v - h
        let minus = Double(run(Tape(recording: false)).loss.value.scalar)
        p.value.storage[i] = v
        let numeric = Float((plus - minus) / Double(2 * h))
        let a = p.gradient.storage[i]
        #expect(abs(a - numeric) / max(1, abs(a), abs(numeric)) < 2e-2, "\(p.name)[\(i)]: analytic \(a), numeric \(numeric)")
        checked += 1
      }
    }
    #expect(checked == model.parameterCount && checked > 150)
    #expect(run(Tape(recording: false)).loss.value.scalar.isFinite)
    // Every parameter of the classifier, the encoder and the decoder gets a gradient.
    for p in model.parameters where p.name.hasSuffix(".weight") {
      #expect(p.gradient.storage.contains { $0 != 0 }, "\(p.name)")
    }
  }

  /// −U(x) against the formula Σ_y q(y|x)·(−L(x,y)) + Σ_y q(y|x) log q(y|x), term by term.
  /// The log-variance head is pinned very negative, so z is the mean and −L needs no noise.
  @Test func unlabelledBoundIsTheExpectationOverClassesMinusTheEntropy() throws {
    let model = try SSVAE(configuration: tiny, seed: 2)
    for p in model.parameters where p.name.hasPrefix("encoder.log_variance") {
      p.value = Tensor(repeating: p.name.hasSuffix("bias") ? -60 : 0, shape: p.value.shape)
    }
    var r = SeededRandom(seed: 4)
    let u = Binarization.sample(Tensor(randomUniform: [5, 6], low: 0, high: 1, rng: &r), rng: &r)
    let w = SSVAEWeights(labelled: 0, unlabelled: 1, classification: 0)
    var rng = SeededRandom(seed: 1)
    let tape = Tape(recording: false)
    let b = model.loss(labelled: Tensor(zeros: [0, 6]), labels: [], unlabelled: u, weights: w, tape: tape, rng: &rng)
    #expect(abs(b.unlabelledBound - Double(b.loss.value.scalar)) < 1e-4)
    #expect(b.labelledBound == 0 && b.crossEntropy == 0)
    let logits = model.classifierLogits(tape.constant(u), tape: tape).value
    var expected = 0.0
    for i in 0..<5 {
      let row = (0..<3).map { Double(logits.storage[i * 3 + $0]) }
      let m = row.max()!
      let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
      for y in 0..<3 {
        var nr = SeededRandom(seed: 0)
        let negL = Double(model.negativeBound(u.sliced(axis: 0, range: i..<(i + 1)), labels: [y], tape: tape, rng: &nr).bound.value.scalar)
        let logQ = row[y] - lse
        expected += Foundation.exp(logQ) * (negL + logQ)
      }
    }
    #expect(abs(b.unlabelledBound - expected / 5) < 1e-3 * max(1, abs(expected / 5)), "\(b.unlabelledBound) vs \(expected / 5)")
  }

  @Test func lossDecreasesOnASmallBatch() throws {
    let data = stripeImages(48, height: 8, width: 8)
    let model = try SSVAE(configuration: .init(height: 8, width: 8, classes: 4, hidden: [64], latentSize: 4), seed: 1)
    let adam = Adam(parameters: model.parameters, learningRate: 3e-3)
    let x = data.batch(Array(0..<8))
    let labels = Array(data.labels![0..<8])
    let u = data.batch(Array(8..<48))
    let w = SSVAEWeights(labelledCount: 8, unlabelledCount: 40)
    var rng = SeededRandom(seed: 5)
    var first: SSVAEBatch? = nil
    var last: SSVAEBatch? = nil
    for _ in 0..<80 {
      zeroGradients(model.parameters)
      let tape = Tape()
      let b = model.loss(labelled: x, labels: labels, unlabelled: u, weights: w, tape: tape, rng: &rng)
      tape.backward(b.loss)
      adam.step()
      if first == nil { first = b }
      last = b
    }
    let f = first!.loss.value.scalar, l = last!.loss.value.scalar
    #expect(l < 0.6 * f, "loss \(f) → \(l)")
    #expect(last!.crossEntropy < 0.5 * first!.crossEntropy, "CE \(first!.crossEntropy) → \(last!.crossEntropy)")
    #expect(model.classificationError(data.subset(Array(8..<48))) < 0.3)
  }
}

@Suite struct SSVAETrainingTests {
  let config = SSVAEConfiguration(height: 6, width: 6, classes: 4, hidden: [16], latentSize: 3)

  func settings(epochs: Int) -> SSVAETrainingSettings {
    var s = SSVAETrainingSettings()
    s.batchSize = 8
    s.labelledBatchSize = 4
    s.labels = 8
    s.epochs = epochs
    s.validationCount = 8
    s.seed = 3
    s.learningRate = 3e-3
    return s
  }

  @Test func labelsAreBalancedAndResumeContinuesBitForBit() throws {
    let dir = try scratchDirectory()
    let data = stripeImages(60, height: 6, width: 6)
    let straight = try SSVAETrainer(
      model: try SSVAE(configuration: config, seed: 1), settings: settings(epochs: 3), images: data,
      outputPath: dir.appendingPathComponent("a.safetensors").path)
    #expect(straight.labelled.count == 8 && straight.unlabelled.count == 44 && straight.validation.count == 8)
    #expect((0..<4).allSatisfy { c in straight.labelled.labels!.filter { $0 == c }.count == 2 })
    #expect(straight.unlabelled.labels == nil)
    // α/N = 0.1·N/N_l with N = 52 images, N_l = 8.
    #expect(abs(straight.weights.classification - 0.1 * 52 / 8) < 1e-5)
    #expect(try straight.run() == .finished)

    let path = dir.appendingPathComponent("b.safetensors").path
    let first = try SSVAETrainer(
      model: try SSVAE(configuration: config, seed: 1), settings: settings(epochs: 3), images: data, outputPath: path)
    first.stopAfterEpoch = 1
    #expect(try first.run() == .stoppedAfterEpoch(1))
    let second = try SSVAETrainer(
      model: try SSVAE(configuration: config, seed: 99), settings: settings(epochs: 3), images: data, outputPath: path)
    try second.resume()
    #expect(second.state.epoch == 1)
    #expect(try second.run() == .finished)
    for (a, b) in zip(straight.model.parameters, second.model.parameters) { #expect(a.value == b.value, "\(a.name)") }
    #expect(straight.state.history.map(\.trainLoss) == second.state.history.map(\.trainLoss))

    let (loaded, file) = try SSVAE.load(path: path)
    #expect(loaded.configuration == config)
    #expect(file.metadata["gvae.training"]?.contains("labelled_images") == true)
    // Each kind refuses the other's file by name.
    #expect(throws: ImageModelError.self) { _ = try ImageVAE.load(path: path) }
    do { _ = try ImageVAE.load(path: path) } catch { #expect(error.description.contains("semi-supervised VAE (M2)")) }
    let vaePath = dir.appendingPathComponent("v.safetensors").path
    try ImageVAE(configuration: .init(architecture: .dense, height: 6, width: 6, hidden: [4], latentSize: 2, activation: .tanh), seed: 0)
      .save(to: vaePath)
    do {
      _ = try SSVAE.load(path: vaePath)
      Issue.record("no error")
    } catch { #expect(error.description.contains("is an image VAE model file, not a semi-supervised VAE")) }
    // A resume with other labels is refused.
    var other = settings(epochs: 3)
    other.labels = 12
    let third = try SSVAETrainer(model: try SSVAE(configuration: config, seed: 1), settings: other, images: data, outputPath: path)
    #expect(throws: ImageTrainingError.self) { try third.resume() }
  }

  @Test func labelCountsThatCannotBeBalancedAreErrors() throws {
    var s = settings(epochs: 1)
    s.labels = 6
    #expect(throws: ImageTrainingError.self) {
      _ = try SSVAETrainer(model: try SSVAE(configuration: config, seed: 1), settings: s, images: stripeImages(60, height: 6, width: 6), outputPath: "/tmp/x")
    }
    s.labels = 400
    #expect(throws: ImageTrainingError.self) {
      _ = try SSVAETrainer(model: try SSVAE(configuration: config, seed: 1), settings: s, images: stripeImages(60, height: 6, width: 6), outputPath: "/tmp/x")
    }
  }
}

@Suite struct SSVAEStackedTests {
  /// An m1+m2 file carries its M1: loaded back, it maps images to the same features and
  /// classifies them the same way.
  @Test func m1PlusM2FileRoundTrip() throws {
    let dir = try scratchDirectory()
    let images = stripeImages(20, height: 6, width: 6)
    let m1 = try ImageVAE(
      configuration: .init(architecture: .dense, height: 6, width: 6, hidden: [8], latentSize: 3, activation: .tanh), seed: 4)
    let f = SSVAE.features(m1, images)
    #expect(f.height == 1 && f.width == 3 && f.count == 20 && f.labels == images.labels)
    let model = try SSVAE(configuration: .init(height: 1, width: 3, classes: 4, hidden: [8], latentSize: 2, input: "m1+m2"), seed: 1)
    model.m1 = m1
    model.m1Binary = false
    let path = dir.appendingPathComponent("s.safetensors").path
    try model.save(to: path)
    let (back, _) = try SSVAE.load(path: path)
    #expect(back.m1 != nil && back.m1Binary == false)
    #expect(back.inputs(images) == model.inputs(images))
    #expect(back.classify(f.batch(Array(0..<20))) == model.classify(f.batch(Array(0..<20))))
    #expect(throws: ImageModelError.self) {
      _ = try SSVAE(configuration: .init(height: 2, width: 3, classes: 4, input: "m1+m2"), seed: 0)
    }
    // A model on two of the M1's three dimensions keeps that choice in its file.
    let picked = try SSVAE(
      configuration: .init(height: 1, width: 2, classes: 4, hidden: [8], latentSize: 2, input: "m1+m2", m1Dimensions: [0, 2]),
      seed: 1)
    picked.m1 = m1
    try picked.save(to: path)
    let (pickedBack, _) = try SSVAE.load(path: path)
    #expect(pickedBack.configuration.m1Dimensions == [0, 2])
    let two = pickedBack.inputs(images)
    #expect(two.width == 2 && two == SSVAE.features(m1, images, dimensions: [0, 2]))
    for i in 0..<20 {
      #expect(two.pixels[i * 2] == f.pixels[i * 3] && two.pixels[i * 2 + 1] == f.pixels[i * 3 + 2])
    }
    for bad in [[2, 0], [0], [0, 0], [-1, 1]] {
      #expect(throws: ImageModelError.self) {
        _ = try SSVAE(
          configuration: .init(height: 1, width: 2, classes: 4, input: "m1+m2", m1Dimensions: bad), seed: 0)
      }
    }
    // Dimensions past the M1's latent size are a bad file, not a crash.
    let beyond = try SSVAE(
      configuration: .init(height: 1, width: 2, classes: 4, hidden: [8], latentSize: 2, input: "m1+m2", m1Dimensions: [0, 3]),
      seed: 1)
    beyond.m1 = m1
    try beyond.save(to: path)
    #expect(throws: ImageModelError.self) { _ = try SSVAE.load(path: path) }
  }

  /// The M1 posteriors: the means are `features`, the deviations exp(logvar / 2) except on a
  /// dimension whose means barely vary (zeroed); a trainer given them draws each step's
  /// inputs around the means (so its steps differ from one on the means alone), records it,
  /// and still resumes bit for bit.
  @Test func posteriorNoiseOnActiveDimensions() throws {
    let images = stripeImages(60, height: 6, width: 6)
    let m1 = try ImageVAE(
      configuration: .init(architecture: .dense, height: 6, width: 6, hidden: [8], latentSize: 3, activation: .tanh), seed: 4)
    // Dimension 2's mean is made constant: its weights into the mean are zeroed.
    for p in m1.parameters where p.name.hasPrefix("encoder.mean") {
      let cols = p.value.shape.count == 2 ? p.value.shape[1] : 1
      for j in 0..<cols { p.value.storage[2 * cols + j] = 0 }
    }
    let (means, deviations) = SSVAE.featureDistributions(m1, images)
    #expect(means == SSVAE.features(m1, images))
    // The inactive dimension is dropped when asked, in the features and the deviations alike.
    #expect(SSVAE.activeDimensions(means) == [0, 1])
    let (kept, keptDeviations) = SSVAE.featureDistributions(m1, images, dimensions: [0, 1])
    #expect(kept == SSVAE.features(m1, images, dimensions: [0, 1]) && kept.width == 2 && keptDeviations.width == 2)
    for i in 0..<60 {
      for j in 0..<2 {
        #expect(kept.pixels[i * 2 + j] == means.pixels[i * 3 + j])
        #expect(keptDeviations.pixels[i * 2 + j] == deviations.pixels[i * 3 + j])
      }
    }
    let tape = Tape(recording: false)
    let q = m1.encode(tape.constant(images.batch(Array(0..<60))), tape: tape)
    for i in 0..<60 {
      for j in 0..<2 {
        let want = expf(0.5 * q.logVariance.value.storage[i * 3 + j])
        #expect(abs(deviations.pixels[i * 3 + j] - want) <= 1e-6 * want)
      }
      #expect(deviations.pixels[i * 3 + 2] == 0)
    }

    let dir = try scratchDirectory()
    let config = SSVAEConfiguration(height: 1, width: 3, classes: 4, hidden: [8], latentSize: 2, input: "m1+m2")
    var s = SSVAETrainingTests().settings(epochs: 2)
    s.binarize = false
    func trainer(_ name: String, noisy: Bool, seed: UInt64 = 1) throws -> SSVAETrainer {
      try SSVAETrainer(
        model: try SSVAE(configuration: config, seed: seed), settings: s, images: means,
        deviations: noisy ? deviations : nil, outputPath: dir.appendingPathComponent(name).path)
    }
    let plain = try trainer("p.safetensors", noisy: false)
    let noisy = try trainer("n.safetensors", noisy: true)
    #expect(noisy.settings.featureNoise == true && plain.settings.featureNoise == false)
    let (x0, _, u0) = plain.stepData(plain.batches(epoch: 0)[0], epoch: 0, batch: 0)
    let (x1, _, u1) = noisy.stepData(noisy.batches(epoch: 0)[0], epoch: 0, batch: 0)
    #expect(x0 != x1 && u0 != u1)
    #expect(try noisy.run() == .finished)
    let half = try trainer("h.safetensors", noisy: true)
    half.stopAfterEpoch = 1
    #expect(try half.run() == .stoppedAfterEpoch(1))
    let rest = try trainer("h.safetensors", noisy: true, seed: 9)
    try rest.resume()
    #expect(try rest.run() == .finished)
    #expect(noisy.state.history.map(\.trainLoss) == rest.state.history.map(\.trainLoss))
    // A resume without the noise is refused.
    #expect(throws: ImageTrainingError.self) { try trainer("h.safetensors", noisy: false).resume() }
  }
}
