import Engine
import Foundation
import Images
import NN
import Testing

/// A tiny CycleGAN for 8×8 images: one downsampling, one residual block, 4 filters.
let tinyCycleGAN = CycleGANConfiguration(
  height: 8, width: 8, generatorFilters: 4, downsamplings: 1, residualBlocks: 1, discriminatorFilters: 4,
  discriminatorLayers: 1)

/// Two unpaired 8×8 domains: A bright bars on dark, B dark bars on bright (labels: bar position).
func cycleDomains(_ n: Int, seed: UInt64 = 1) -> (a: ImageSet, b: ImageSet) {
  var rng = SeededRandom(seed: seed)
  var pa: [Float] = []
  var pb: [Float] = []
  for k in 0..<n {
    let col = k % 4 * 2
    for _ in 0..<8 {
      for x in 0..<8 {
        let on = x == col || x == col + 1
        pa.append(on ? 0.9 + 0.1 * rng.nextUniform() : 0.1 * rng.nextUniform())
      }
    }
    for y in 0..<8 {
      for _ in 0..<8 {
        let on = y == col || y == col + 1
        pb.append(on ? 0.1 * rng.nextUniform() : 0.9 + 0.1 * rng.nextUniform())
      }
    }
  }
  let labels = (0..<n).map { $0 % 4 }
  return (
    ImageSet(height: 8, width: 8, pixels: pa, labels: labels), ImageSet(height: 8, width: 8, pixels: pb, labels: labels)
  )
}

@Suite struct ResizeTests {
  @Test func constantImagesStayConstant() {
    for (h, w, H, W) in [(28, 28, 16, 16), (8, 8, 16, 16), (5, 7, 3, 11), (16, 16, 16, 16)] {
      let out = resizeBilinear([Float](repeating: 0.375, count: 2 * h * w), count: 2, height: h, width: w, toHeight: H, toWidth: W)
      #expect(out.count == 2 * H * W)
      #expect(out.allSatisfy { abs($0 - 0.375) < 1e-6 }, "\(h)×\(w) → \(H)×\(W)")
    }
  }

  @Test func knownSmallCasesMatchPyTorch() {
    // F.interpolate(tensor([[0, 1], [2, 3]]), size: 4, mode: "bilinear", align_corners: False).
    let up = resizeBilinear([0, 1, 2, 3], count: 1, height: 2, width: 2, toHeight: 4, toWidth: 4)
    let expected: [Float] = [
      0, 0.25, 0.75, 1,
      0.5, 0.75, 1.25, 1.5,
      1.5, 1.75, 2.25, 2.5,
      2, 2.25, 2.75, 3,
    ]
    #expect(zip(up, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(up)")
    // Halving samples the centre of each 2×2 block: its mean.
    let four: [Float] = (0..<16).map { Float($0) }
    let down = resizeBilinear(four, count: 1, height: 4, width: 4, toHeight: 2, toWidth: 2)
    #expect(down == [2.5, 4.5, 10.5, 12.5])
    // A second image is resized on its own (no bleeding between images).
    let two = resizeBilinear([0, 1, 2, 3, 9, 9, 9, 9], count: 2, height: 2, width: 2, toHeight: 4, toWidth: 4)
    #expect(Array(two[0..<16]) == up && two[16...].allSatisfy { $0 == 9 })
  }

  @Test func imageSetResizeKeepsLabelsAndRange() {
    let (a, _) = cycleDomains(6)
    let r = a.resized(height: 16, width: 12)
    #expect(r.height == 16 && r.width == 12 && r.count == 6 && r.labels == a.labels)
    #expect(r.pixels.allSatisfy { $0 >= 0 && $0 <= 1 })
    #expect(a.resized(height: 8, width: 8) == a)
  }
}

@Suite struct CycleGANTests {
  @Test func shapesAndParameterNames() throws {
    let m = try CycleGAN(configuration: CycleGANConfiguration(height: 16, width: 16), seed: 1)
    let tape = Tape(recording: false)
    var rng = SeededRandom(seed: 42)
    let x = tape.constant(Tensor(randomUniform: [3, 1, 16, 16], low: -1, high: 1, rng: &rng))
    let y = m.generatorAB(x, tape: tape).value
    #expect(y.shape == [3, 1, 16, 16] && y.storage.allSatisfy { abs($0) < 1 })
    #expect(m.discriminatorA(x, tape: tape).shape == [3, 1, 2, 2])
    #expect(m.configuration.patchShape == (2, 2))
    let names = m.parameters.map(\.name)
    #expect(Set(names).count == names.count)
    #expect(names.contains("generator_ab.block3.conv1.weight") && names.contains("discriminator_b.output.bias"))
    #expect(names.filter { $0.hasPrefix("generator_ba.") }.count == names.filter { $0.hasPrefix("generator_ab.") }.count)
    // CycleGAN's initialisation: weights N(0, 0.02).
    let w = m.generatorAB.parameters[0].value.storage
    let sd = (w.map { $0 * $0 }.reduce(0, +) / Float(w.count)).squareRoot()
    #expect(abs(sd - 0.02) < 0.004, "\(sd)")
    #expect(throws: CycleGANError.self) { _ = try CycleGAN(configuration: CycleGANConfiguration(height: 10, width: 10), seed: 0) }
    #expect(throws: CycleGANError.self) {
      _ = try CycleGAN(configuration: CycleGANConfiguration(height: 8, width: 8, downsamplings: 1, discriminatorLayers: 2), seed: 0)
    }
  }

  /// Central differences of the generators' whole loss (adversarial + cycle + identity).
  @Test func generatorLossGradientCheck() throws {
    let m = try CycleGAN(configuration: tinyCycleGAN, seed: 3)
    // Larger weights than N(0, 0.02), so that every term contributes visibly.
    var rng = SeededRandom(seed: 4)
    for p in m.parameters { p.value = Tensor(randomNormal: p.value.shape, std: 0.3, rng: &rng) }
    let (a, b) = cycleDomains(2)
    let ta = m.networkInput(a.batch([0, 1]))
    let tb = m.networkInput(b.batch([0, 1]))
    func loss() -> Double {
      Double(m.generatorLoss(a: ta, b: tb, lambda: 10, identityWeight: 0.5, tape: Tape(recording: false)).total.value.scalar)
    }
    zeroGradients(m.parameters)
    let tape = Tape()
    tape.backward(m.generatorLoss(a: ta, b: tb, lambda: 10, identityWeight: 0.5, tape: tape).total)
    var checked = 0
    var bad: [String] = []
    for p in m.generatorParameters {
      for i in (0..<4).map({ $0 * p.value.count / 4 }) {
        func numeric(_ h: Float) -> Float {
          let v = p.value.storage[i]
          p.value.storage[i] = v + h
          let plus = loss()
          p.value.storage[i] = v - h
          let minus = loss()
          p.value.storage[i] = v
          return Float((plus - minus) / Double(2 * h))
        }
        let g = p.gradient.storage[i]
        func off(_ n: Float) -> Bool { abs(g - n) / max(1, abs(g), abs(n)) > 3e-2 }
        // An L1 or ReLU kink inside ±h spoils one step size; a wrong gradient spoils both.
        let n1 = numeric(1e-3)
        if off(n1) {
          let n2 = numeric(2.5e-4)
          if off(n2) { bad.append("\(p.name)[\(i)]: \(g) vs \(n1), \(n2)") }
        }
        checked += 1
      }
    }
    #expect(checked >= 40)
    // A missing term (the identity loss alone moves these gradients by 0.1–0.3) fails most.
    #expect(bad.count <= 1, "\(bad)")
  }

  @Test func generatorAndDiscriminatorLossesMoveTheRightWay() throws {
    let m = try CycleGAN(configuration: tinyCycleGAN, seed: 5)
    let (a, b) = cycleDomains(8)
    let ta = m.networkInput(a.batch(Array(0..<8)))
    let tb = m.networkInput(b.batch(Array(0..<8)))
    // The discriminators alone, against fixed fakes: their LSGAN loss falls.
    let fakes = m.generatorLoss(a: ta, b: tb, lambda: 10, identityWeight: 0.5, tape: Tape(recording: false))
    let dAdam = Adam(parameters: m.discriminatorParameters, hyperparameters: .init(learningRate: 2e-3, beta1: 0.5))
    var dLosses: [Float] = []
    for _ in 0..<30 {
      zeroGradients(m.parameters)
      let tape = Tape()
      let l = m.discriminatorLoss(m.discriminatorA, real: ta, fake: fakes.fakeA, tape: tape)
        + m.discriminatorLoss(m.discriminatorB, real: tb, fake: fakes.fakeB, tape: tape)
      tape.backward(l)
      dAdam.step()
      dLosses.append(l.value.scalar)
    }
    #expect(dLosses.last! < 0.5 * dLosses.first!, "\(dLosses.first!) → \(dLosses.last!)")
    // The generators alone, against those discriminators: fooling them gets easier.
    let gAdam = Adam(parameters: m.generatorParameters, hyperparameters: .init(learningRate: 2e-3, beta1: 0.5))
    var adv: [Float] = []
    for _ in 0..<30 {
      zeroGradients(m.parameters)
      let tape = Tape()
      let g = m.generatorLoss(a: ta, b: tb, lambda: 0, identityWeight: 0, tape: tape)
      tape.backward(g.total)
      gAdam.step()
      adv.append(g.adversarialAB + g.adversarialBA)
    }
    #expect(adv.last! < 0.5 * adv.first!, "\(adv.first!) → \(adv.last!)")
    // …and the discriminators' loss on the new fakes is back up.
    let after = m.generatorLoss(a: ta, b: tb, lambda: 10, identityWeight: 0.5, tape: Tape(recording: false))
    let tape = Tape(recording: false)
    let dAfter = (m.discriminatorLoss(m.discriminatorA, real: ta, fake: after.fakeA, tape: tape)
      + m.discriminatorLoss(m.discriminatorB, real: tb, fake: after.fakeB, tape: tape)).value.scalar
    #expect(dAfter > 2 * dLosses.last!, "\(dLosses.last!) → \(dAfter)")
  }

  @Test func poolBehaviour() {
    var rng = SeededRandom(seed: 9)
    // Capacity 0: the fakes pass through untouched and nothing is kept.
    var none = ImagePool(capacity: 0, imageSize: 2)
    let x = Tensor(shape: [3, 2], storage: [1, 1, 2, 2, 3, 3])
    #expect(none.query(x, rng: &rng) == x && none.images.isEmpty)
    // Filling: the first `capacity` fakes are returned as they are and stored.
    var pool = ImagePool(capacity: 4, imageSize: 2)
    #expect(pool.query(x, rng: &rng) == x)
    #expect(pool.images == [[1, 1], [2, 2], [3, 3]])
    let y = Tensor(shape: [2, 2], storage: [4, 4, 5, 5])
    let out = pool.query(y, rng: &rng)
    // The 4th fills the pool; the 5th is itself or a stored one swapped for it.
    #expect(Array(out.storage[0..<2]) == [4, 4])
    #expect(pool.images.count == 4)
    let fifth = Array(out.storage[2..<4])
    if fifth == [5, 5] {
      #expect(pool.images == [[1, 1], [2, 2], [3, 3], [4, 4]])
    } else {
      #expect([[1, 1], [2, 2], [3, 3], [4, 4]].contains(fifth))
      #expect(pool.images.contains([5, 5]) && !pool.images.contains(fifth))
    }
    // Over many fakes, about half come back from the pool; the pool never grows.
    var returnedOld = 0
    for k in 0..<2000 {
      let v = Float(100 + k)
      let o = pool.query(Tensor(shape: [1, 2], storage: [v, v]), rng: &rng)
      if o.storage[0] != v { returnedOld += 1 }
      #expect(pool.images.count == 4)
    }
    #expect((900...1100).contains(returnedOld), "\(returnedOld)")
    // The same seed gives the same pool.
    var p1 = ImagePool(capacity: 2, imageSize: 1)
    var p2 = ImagePool(capacity: 2, imageSize: 1)
    var r1 = SeededRandom(seed: 3)
    var r2 = SeededRandom(seed: 3)
    for k in 0..<20 {
      let t = Tensor(shape: [1, 1], storage: [Float(k)])
      #expect(p1.query(t, rng: &r1) == p2.query(t, rng: &r2))
    }
    #expect(p1 == p2)
  }

  func settings(epochs: Int) -> CycleGANTrainingSettings {
    var s = CycleGANTrainingSettings()
    s.batchSize = 4
    s.epochs = epochs
    s.seed = 3
    s.learningRate = 2e-3
    s.poolSize = 6
    return s
  }

  @Test func cycleLossFallsWithTraining() throws {
    let (a, b) = cycleDomains(24)
    let (ha, hb) = cycleDomains(8, seed: 2)
    let m = try CycleGAN(configuration: tinyCycleGAN, seed: 1)
    let beforeA = m.cycleError(ha, from: .aToB)
    let beforeB = m.cycleError(hb, from: .bToA)
    let dir = try scratchDirectory()
    let t = try CycleGANTrainer(
      model: m, settings: settings(epochs: 6), trainA: a, trainB: b, heldOutA: ha, heldOutB: hb,
      outputPath: dir.appendingPathComponent("c.safetensors").path)
    #expect(try t.run() == .finished)
    let h = t.state.history
    #expect(h.count == 6 && h.allSatisfy { $0.step == 6 * $0.epoch })
    #expect(h.last!.cycleA < 0.6 * h.first!.cycleA && h.last!.cycleB < 0.6 * h.first!.cycleB, "\(h.map(\.cycleA))")
    let afterA = m.cycleError(ha, from: .aToB)
    let afterB = m.cycleError(hb, from: .bToA)
    #expect(afterA < 0.6 * beforeA && afterB < 0.6 * beforeB, "A \(beforeA) → \(afterA), B \(beforeB) → \(afterB)")
    #expect(h.last!.heldOutCycleA == afterA)
    // Translations are images: values in [0, 1], the input's count.
    let tr = m.translate(ha.pixels, count: 8, direction: .aToB, chunk: 3)
    #expect(tr.count == ha.pixels.count && tr.allSatisfy { $0 >= 0 && $0 <= 1 })
    // Label preservation counts agreements with the labels.
    let p = try #require(m.labelPreservation(ha, direction: .aToB) { _, n in (0..<n).map { $0 % 4 } })
    #expect(p.fraction == 1 && p.images == 8)
    let q = try #require(m.labelPreservation(ha, direction: .aToB) { _, n in [Int](repeating: 0, count: n) })
    #expect(q.fraction == 0.25)
  }

  @Test func resumeContinuesBitForBit() throws {
    let dir = try scratchDirectory()
    let (a, b) = cycleDomains(10)
    let straight = try CycleGANTrainer(
      model: try CycleGAN(configuration: tinyCycleGAN, seed: 1), settings: settings(epochs: 3), trainA: a, trainB: b,
      outputPath: dir.appendingPathComponent("a.safetensors").path)
    #expect(try straight.run() == .finished)

    let path = dir.appendingPathComponent("b.safetensors").path
    let first = try CycleGANTrainer(
      model: try CycleGAN(configuration: tinyCycleGAN, seed: 1), settings: settings(epochs: 3), trainA: a, trainB: b,
      outputPath: path)
    first.stopAfterEpoch = 1
    #expect(try first.run() == .stoppedAfterEpoch(1))
    // The pool (capacity 6, 10 fakes per domain seen) is full, so its contents matter.
    #expect(first.poolA.images.count == 6)
    let second = try CycleGANTrainer(
      model: try CycleGAN(configuration: tinyCycleGAN, seed: 99), settings: settings(epochs: 3), trainA: a, trainB: b,
      outputPath: path)
    try second.resume()
    #expect(second.state.epoch == 1 && second.poolA == first.poolA && second.poolB == first.poolB)
    #expect(try second.run() == .finished)
    for (x, y) in zip(straight.model.parameters, second.model.parameters) { #expect(x.value == y.value, "\(x.name)") }
    #expect(straight.state.history.map(\.generatorLoss) == second.state.history.map(\.generatorLoss))
    #expect(straight.poolB == second.poolB)
    // The model file loads back; a checkpoint of another configuration is refused.
    let (loaded, file) = try CycleGAN.load(path: path)
    #expect(loaded.configuration == tinyCycleGAN && file.metadata["gvae.kind"] == "image-cyclegan")
    for (x, y) in zip(loaded.parameters, second.model.parameters) { #expect(x.value == y.value) }
    var other = tinyCycleGAN
    other.residualBlocks = 2
    let wrong = try CycleGANTrainer(
      model: try CycleGAN(configuration: other, seed: 1), settings: settings(epochs: 3), trainA: a, trainB: b, outputPath: path)
    #expect(throws: ImageTrainingError.self) { try wrong.resume() }
  }

  @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
    let dir = try scratchDirectory()
    let (a, b) = cycleDomains(8)
    let t = try CycleGANTrainer(
      model: try CycleGAN(configuration: tinyCycleGAN, seed: 1), settings: settings(epochs: 3), trainA: a, trainB: b,
      outputPath: dir.appendingPathComponent("m.safetensors").path)
    t.injectNonFiniteAtStep = 3  // the second batch of epoch 2
    do {
      _ = try t.run()
      Issue.record("no error")
    } catch {
      #expect("\(error)".contains("NaN or infinite at epoch 2, step 3"), "\(error)")
    }
    #expect(t.state.step == 3)
    // The checkpoint on disk is epoch 1's: it resumes there.
    let r = try CycleGANTrainer(
      model: try CycleGAN(configuration: tinyCycleGAN, seed: 1), settings: settings(epochs: 3), trainA: a, trainB: b,
      outputPath: t.outputPath)
    try r.resume()
    #expect(r.state.epoch == 1 && r.state.step == 2)
  }

  @Test func otherModelFilesAreClearErrors() throws {
    let vae = SafeTensorsFile(tensors: ["w": Tensor(zeros: [1])], metadata: ["gvae.kind": "image-vae"])
    #expect(throws: CycleGANError.wrongKind("m is a model file of kind image-vae, not a CycleGAN (gvae.kind=image-cyclegan)")) {
      _ = try CycleGAN.load(vae, name: "m")
    }
    let grammar = SafeTensorsFile(tensors: ["w": Tensor(zeros: [1])], metadata: ["gvae.grammar": "S -> 'a'"])
    #expect(throws: CycleGANError.self) { _ = try CycleGAN.load(grammar, name: "g") }
    // Missing weights are named.
    let m = try CycleGAN(configuration: tinyCycleGAN, seed: 0)
    var file = m.container()
    file.entries["generator_ab.last.bias"] = nil
    #expect {
      _ = try CycleGAN.load(file, name: "x")
    } throws: { "\($0)".contains("generator_ab.last.bias") }
  }

  @Test func learningRateDecay() {
    var s = CycleGANTrainingSettings()
    s.epochs = 4
    s.decayEpochs = 2
    #expect(s.learningRate(epoch: 1) == 2e-4)
    #expect(abs(s.learningRate(epoch: 2) - 2e-4 * 2 / 3) < 1e-10)
    #expect(abs(s.learningRate(epoch: 3) - 2e-4 / 3) < 1e-10)
  }
}
