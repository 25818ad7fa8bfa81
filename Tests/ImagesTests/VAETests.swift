import Engine
import Foundation
import Images
import NN
import Testing

/// `n` binary images of `h × w`: one of four stripe patterns each, with a few flipped pixels.
func stripeImages(_ n: Int, height h: Int, width w: Int, seed: UInt64 = 1) -> ImageSet {
  var rng = SeededRandom(seed: seed)
  var px: [Float] = []
  for k in 0..<n {
    for y in 0..<h {
      for x in 0..<w {
        let on: Bool
        switch k % 4 {
        case 0: on = x % 3 == 0
        case 1: on = y % 3 == 0
        case 2: on = (x + y) % 4 == 0
        default: on = x < w / 2
        }
        px.append((on != (rng.nextUniform() < 0.05)) ? 1 : 0)
      }
    }
  }
  return ImageSet(height: h, width: w, pixels: px, labels: (0..<n).map { $0 % 4 })
}

/// Adam steps on one batch; the first and last loss.
func fit(_ model: ImageVAE, _ x: Tensor, samples k: Int, steps: Int, lr: Float = 1e-3) -> (Float, Float) {
  let adam = Adam(parameters: model.parameters, learningRate: lr)
  var rng = SeededRandom(seed: 5)
  var first: Float = 0
  var last: Float = 0
  for s in 0..<steps {
    zeroGradients(model.parameters)
    let tape = Tape()
    let b = model.bound(x, samples: k, tape: tape, rng: &rng)
    tape.backward(b.loss)
    adam.step()
    if s == 0 { first = b.loss.value.scalar }
    last = b.loss.value.scalar
  }
  return (first, last)
}

@Suite struct VAETests {
  @Test(arguments: [1, 5])
  func denseIWAEPresetLossDecreases(samples: Int) throws {
    let data = stripeImages(32, height: 28, width: 28)
    let model = try ImageVAE(configuration: ImageVAEConfiguration.preset("iwae-1", height: 28, width: 28)!, seed: 1)
    #expect(model.parameterCount == 2 * (784 * 200 + 200 * 200) + 2 * 200 * 50 + 50 * 200 + 4 * 200 + 100 + 784)
    let (first, last) = fit(model, data.batch(Array(0..<32)), samples: samples, steps: 60)
    #expect(first > 400 && last < 0.5 * first, "loss \(first) → \(last)")
  }

  @Test func convolutionalLossDecreases() throws {
    let data = stripeImages(16, height: 16, width: 16)
    let model = try ImageVAE(configuration: ImageVAEConfiguration.preset("conv", height: 16, width: 16)!, seed: 2)
    let (first, last) = fit(model, data.batch(Array(0..<16)), samples: 1, steps: 50, lr: 3e-3)
    #expect(last < 0.6 * first, "loss \(first) → \(last)")
  }

  /// The M1 preset (Kingma et al.'s 784–500–500–50 softplus) learns, and its configuration
  /// (softplus included) survives a model file.
  @Test func m1PresetLearnsAndRoundTrips() throws {
    var c = ImageVAEConfiguration.preset("m1", height: 8, width: 8)!
    #expect(c.hidden == [500, 500] && c.latentSize == 50 && c.activation == .softplus)
    c.hidden = [32, 32]
    c.latentSize = 4
    let data = stripeImages(12, height: 8, width: 8)
    let model = try ImageVAE(configuration: c, seed: 4)
    let (first, last) = fit(model, data.batch(Array(0..<12)), samples: 1, steps: 40, lr: 3e-3)
    #expect(last < 0.8 * first, "loss \(first) → \(last)")
    let path = try scratchDirectory().appendingPathComponent("m1.safetensors").path
    try model.save(to: path)
    let (back, _) = try ImageVAE.load(path: path)
    #expect(back.configuration == c)
  }

  @Test func twoDimensionalPresetAndSizeChecks() throws {
    let c = ImageVAEConfiguration.preset("2d", height: 28, width: 28)!
    #expect(c.latentSize == 2)
    #expect(throws: ImageModelError.self) {
      _ = try ImageVAE(configuration: ImageVAEConfiguration.preset("conv", height: 25, width: 25)!, seed: 0)
    }
    var huge = c
    huge.hidden = [65_536, 65_536]
    #expect(throws: ImageModelError.self) { _ = try ImageVAE(configuration: huge, seed: 0) }
  }

  @Test func importanceWeightedEstimateIsAboveTheELBOAndGrowsWithK() throws {
    let data = stripeImages(12, height: 8, width: 8)
    let model = try ImageVAE(
      configuration: .init(architecture: .dense, height: 8, width: 8, hidden: [32], latentSize: 4, activation: .tanh),
      seed: 3)
    _ = fit(model, data.batch(Array(0..<12)), samples: 1, steps: 30, lr: 3e-3)
    var previous = -Double.infinity
    var elbos: [Double] = []
    for k in [1, 10, 100, 1000] {
      let e = model.estimateLogLikelihood(data, samples: k, seed: 9, imageBatch: 5, rowBudget: 300)
      #expect(e.images == 12 && e.samples == k)
      #expect(e.logLikelihood >= e.elbo - 1e-9, "k \(k): \(e)")
      #expect(e.logLikelihood > previous, "k \(k): \(e.logLikelihood) after \(previous)")
      previous = e.logLikelihood
      elbos.append(e.elbo)
    }
    // The ELBO estimates agree with each other (same expectation) much better than the gap.
    #expect(abs(elbos[3] - elbos[2]) < 0.5 * (previous - elbos[3]))
    // Chunking changes nothing: the samples are the same stream in the same order.
    let small = model.estimateLogLikelihood(data, samples: 200, seed: 4, imageBatch: 5, rowBudget: 7)
    let large = model.estimateLogLikelihood(data, samples: 200, seed: 4, imageBatch: 5, rowBudget: 100_000)
    #expect(abs(small.logLikelihood - large.logLikelihood) < 1e-4 && abs(small.elbo - large.elbo) < 1e-4)
  }

  /// Central differences of the whole network's loss against every parameter's gradient.
  func checkNetworkGradient(_ c: ImageVAEConfiguration, samples k: Int) throws {
    let model = try ImageVAE(configuration: c, seed: 7)
    let x = stripeImages(3, height: c.height, width: c.width).batch([0, 1, 2])
    func loss() -> Double {
      var rng = SeededRandom(seed: 21)
      return Double(model.bound(x, samples: k, tape: Tape(recording: false), rng: &rng).loss.value.scalar)
    }
    zeroGradients(model.parameters)
    var rng = SeededRandom(seed: 21)
    let tape = Tape()
    tape.backward(model.bound(x, samples: k, tape: tape, rng: &rng).loss)
    var worst: Float = 0
    var checked = 0
    for p in model.parameters {
      // Every element of small tensors, a spread of 12 of large ones.
      let idx = p.value.count <= 24 ? Array(0..<p.value.count) : (0..<12).map { $0 * p.value.count / 12 }
      for i in idx {
        let h: Float = 1e-2
        let v = p.value.storage[i]
        p.value.storage[i] = v + h
        let plus = loss()
        p.value.storage[i] = v - h
        let minus = loss()
        p.value.storage[i] = v
        let numeric = Float((plus - minus) / Double(2 * h))
        let a = p.gradient.storage[i]
        let err = abs(a - numeric) / max(1, abs(a), abs(numeric))
        #expect(err < 2e-2, "\(p.name)[\(i)]: analytic \(a), numeric \(numeric)")
        worst = max(worst, err)
        checked += 1
      }
    }
    #expect(checked > 50)
  }

  @Test func denseNetworkGradientCheck() throws {
    let c = ImageVAEConfiguration(architecture: .dense, height: 3, width: 4, hidden: [5, 4], latentSize: 2, activation: .tanh)
    try checkNetworkGradient(c, samples: 1)
    try checkNetworkGradient(c, samples: 3)
  }

  @Test func convolutionalNetworkGradientCheck() throws {
    let c = ImageVAEConfiguration(
      architecture: .convolutional, height: 8, width: 4, hidden: [6], latentSize: 2, activation: .tanh, channels: [2, 3])
    try checkNetworkGradient(c, samples: 1)
    try checkNetworkGradient(c, samples: 2)
  }
}

@Suite struct ImageTrainingTests {
  func settings(epochs: Int) -> ImageTrainingSettings {
    var s = ImageTrainingSettings()
    s.batchSize = 8
    s.epochs = epochs
    s.validationCount = 8
    s.seed = 3
    s.learningRate = 3e-3
    return s
  }

  let config = ImageVAEConfiguration(architecture: .dense, height: 6, width: 6, hidden: [16], latentSize: 3, activation: .tanh)

  @Test func resumeContinuesBitForBit() throws {
    let dir = try scratchDirectory()
    let data = stripeImages(40, height: 6, width: 6)
    let straight = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 1), settings: settings(epochs: 3), images: data,
      outputPath: dir.appendingPathComponent("a.safetensors").path)
    #expect(try straight.run() == .finished)

    let path = dir.appendingPathComponent("b.safetensors").path
    let first = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 1), settings: settings(epochs: 3), images: data, outputPath: path)
    first.stopAfterEpoch = 1
    #expect(try first.run() == .stoppedAfterEpoch(1))
    let second = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 99), settings: settings(epochs: 3), images: data, outputPath: path)
    try second.resume()
    #expect(second.state.epoch == 1)
    #expect(try second.run() == .finished)
    for (a, b) in zip(straight.model.parameters, second.model.parameters) {
      #expect(a.value == b.value, "\(a.name)")
    }
    #expect(straight.state.history.map(\.trainLoss) == second.state.history.map(\.trainLoss))
    // The best model file loads back with its configuration.
    let (loaded, file) = try ImageVAE.load(path: path)
    #expect(loaded.configuration == config)
    #expect(file.metadata["gvae.training"]?.contains("dynamic") == true)
  }

  /// A checkpoint from the middle of the first epoch (no best validation loss yet: +∞ in the
  /// state) resumes, and the run ends where an uninterrupted one does.
  @Test func firstEpochCheckpointResumes() throws {
    let dir = try scratchDirectory()
    let data = stripeImages(40, height: 6, width: 6)
    let straight = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 1), settings: settings(epochs: 2), images: data,
      outputPath: dir.appendingPathComponent("a.safetensors").path)
    #expect(try straight.run() == .finished)
    let path = dir.appendingPathComponent("b.safetensors").path
    let first = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 1), settings: settings(epochs: 2), images: data, outputPath: path)
    first.shouldStop = { true }
    #expect(try first.run() == .interrupted)
    #expect(first.state.bestValidation == .infinity)
    let second = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 99), settings: settings(epochs: 2), images: data, outputPath: path)
    try second.resume()
    #expect(second.state.epoch == 0 && second.state.batchInEpoch == 1 && second.state.bestValidation == .infinity)
    #expect(try second.run() == .finished)
    #expect(straight.state.history.map(\.trainLoss) == second.state.history.map(\.trainLoss))
    for (a, b) in zip(straight.model.parameters, second.model.parameters) { #expect(a.value == b.value, "\(a.name)") }
  }

  @Test func nonFiniteLossStopsWithoutSaving() throws {
    let dir = try scratchDirectory()
    let t = try ImageTrainer(
      model: try ImageVAE(configuration: config, seed: 1), settings: settings(epochs: 2),
      images: stripeImages(40, height: 6, width: 6), outputPath: dir.appendingPathComponent("m.safetensors").path)
    t.injectNonFiniteAtStep = 5
    let before = t.model.parameters.map(\.value)
    do {
      _ = try t.run()
      Issue.record("no error")
    } catch {
      #expect("\(error)".contains("NaN or infinite at epoch 2, step 5"))
    }
    #expect(t.model.parameters.map(\.value) != before)  // 5 good steps were taken
    #expect(t.state.step == 5)
  }

  @Test func schedule() {
    var s = ImageTrainingSettings()
    s.learningRate = 1e-3
    #expect(s.learningRate(epoch: 0) == 1e-3)
    #expect(abs(s.learningRate(epoch: 1) - 1e-3 * Float(pow(10, -1.0 / 7))) < 1e-9)
    #expect(s.learningRate(epoch: 3) == s.learningRate(epoch: 1))
    #expect(s.learningRate(epoch: 4) < s.learningRate(epoch: 3))
    #expect(abs(s.learningRate(epoch: 5000) - 1e-4) < 1e-9)
    s.schedule = "constant"
    #expect(s.learningRate(epoch: 50) == 1e-3)
  }

  @Test func grammarVAEFileIsAClearError() throws {
    let file = SafeTensorsFile(
      tensors: ["encoder.dense.weight": Tensor(zeros: [2, 2])],
      metadata: ["gvae.configuration": "{}", "gvae.grammar": "S -> 'a'", "gvae.grammar_name": "zinc"])
    #expect(throws: ImageModelError.wrongKind(
      "m.safetensors is a Grammar VAE model file (grammar zinc), not an image VAE; use it with `gvae encode`/`gvae evaluate`, or train an image VAE with `gvae image vae train`")
    ) { _ = try ImageVAE.load(file, name: "m.safetensors") }
    #expect(throws: ImageModelError.self) { _ = try ImageVAE.load(SafeTensorsFile(), name: "x") }
  }
}
