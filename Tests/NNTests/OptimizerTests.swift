import Engine
import NN
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite struct OptimizerTests {
  @Test func adamMatchesHandComputedSteps() {
    let h = Adam.Hyperparameters(learningRate: 0.1)
    var p = Tensor(shape: [1], storage: [1])
    var s = Adam.State(zerosLike: [1])
    let g = Tensor(shape: [1], storage: [0.5])
    (p, s) = Adam.update(parameter: p, gradient: g, state: s, step: 1, hyperparameters: h)
    // m = 0.05, v = 0.00025; corrected 0.5 and 0.25 → step 0.1 · 0.5 / 0.5.
    #expect(abs(s.m.storage[0] - 0.05) < 1e-7)
    #expect(abs(s.v.storage[0] - 0.00025) < 1e-8)
    #expect(abs(p.storage[0] - 0.9) < 1e-6)
    (p, s) = Adam.update(parameter: p, gradient: g, state: s, step: 2, hyperparameters: h)
    #expect(abs(p.storage[0] - 0.8) < 1e-5)
  }

  @Test func adamCorrectedMomentsIsAlgorithm1InFloat() {
    let h = Adam.Hyperparameters(
      learningRate: 0.01, epsilon: 1e-7, biasCorrection: .correctedMoments)
    var p = Tensor(shape: [3], storage: [0.3, -1.7, 2.5])
    var s = Adam.State(zerosLike: [3])
    var (w, m, v) = (p.storage, [Float](repeating: 0, count: 3), [Float](repeating: 0, count: 3))
    for t in 1...5 {
      let g = Tensor(shape: [3], storage: [0.25 * Float(t), -0.75, 1e-3 / Float(t)])
      (p, s) = Adam.update(parameter: p, gradient: g, state: s, step: t, hyperparameters: h)
      let c1 = 1 - powf(0.9, Float(t))
      let c2 = 1 - powf(0.999, Float(t))
      for k in 0..<3 {
        m[k] = 0.9 * m[k] + (1 - 0.9) * g.storage[k]
        v[k] = 0.999 * v[k] + (1 - 0.999) * g.storage[k] * g.storage[k]
        w[k] -= 0.01 * (m[k] / c1) / ((v[k] / c2).squareRoot() + 1e-7)
      }
      #expect(p.storage == w && s.m.storage == m && s.v.storage == v, "step \(t)")
    }
  }

  @Test func adamWeightDecay() {
    let g = Tensor(shape: [1], storage: [0.5])
    let p = Tensor(shape: [1], storage: [2])
    var h = Adam.Hyperparameters(learningRate: 0.1, weightDecay: .decoupled(0.5))
    let (d, _) = Adam.update(
      parameter: p, gradient: g, state: .init(zerosLike: [1]), step: 1, hyperparameters: h)
    #expect(abs(d.storage[0] - (2 - 0.1 * 0.5 * 2 - 0.1)) < 1e-5)
    h.weightDecay = .l2(0.5)  // g' = 0.5 + 1 = 1.5: first step is still lr · sign
    let (l, s) = Adam.update(
      parameter: p, gradient: g, state: .init(zerosLike: [1]), step: 1, hyperparameters: h)
    #expect(abs(l.storage[0] - 1.9) < 1e-5)
    #expect(abs(s.m.storage[0] - 0.15) < 1e-6)
  }

  @Test func sgdMomentumMatchesHandComputedSteps() {
    let g = Tensor(shape: [1], storage: [1])
    var (p, b) = SGD.update(
      parameter: Tensor(shape: [1], storage: [1]), gradient: g, buffer: nil, learningRate: 0.1,
      momentum: 0.9)
    #expect(abs(p.storage[0] - 0.9) < 1e-6)
    (p, b) = SGD.update(parameter: p, gradient: g, buffer: b, learningRate: 0.1, momentum: 0.9)
    #expect(abs(p.storage[0] - 0.71) < 1e-6)
    #expect(abs(b!.storage[0] - 1.9) < 1e-6)
  }

  @Test func adamStateRoundTrip() throws {
    let p = Parameter("w", Tensor(shape: [2], storage: [1, 2]))
    let adam = Adam(parameters: [p], learningRate: 0.01)
    p.gradient = Tensor(shape: [2], storage: [0.3, -0.1])
    adam.step()
    let state = adam.stateTensors()
    #expect(Set(state.keys) == ["step", "w.exp_avg", "w.exp_avg_sq"])
    let other = Adam(parameters: [p], learningRate: 0.01)
    try other.loadState(state)
    #expect(other.stepCount == 1 && other.states == adam.states)
    #expect(throws: OptimizerStateError.missing("w.exp_avg")) {
      try other.loadState(["step": state["step"]!])
    }
  }

  @Test func plateauScheduleFollowsKeras() {
    var s = ReduceLROnPlateau(factor: 0.2, patience: 3, minLearningRate: 1e-4)
    var lr: Float = 1e-3
    var history: [Float] = []
    for metric: Float in [
      1, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85,
    ] {
      lr = s.step(metric: metric, learningRate: lr)
      history.append(lr)
    }
    // Third non-improving epoch reduces ×0.2; later reductions stop at the minimum.
    #expect(abs(history[3] - 1e-3) < 1e-9)
    #expect(abs(history[4] - 2e-4) < 1e-9)
    #expect(abs(history[7] - 2e-4) < 1e-9)
    #expect(abs(history[8] - 1e-4) < 1e-9)
    #expect(abs(history[13] - 1e-4) < 1e-9)
  }

  @Test func stepLR() {
    let s = StepLR(baseLearningRate: 1, stepSize: 2, gamma: 0.5)
    #expect([0, 1, 2, 3, 4].map { s.learningRate(epoch: $0) } == [1, 1, 0.5, 0.5, 0.25])
  }

  @Test func clippingByGlobalNorm() {
    let a = Parameter("a", Tensor(zeros: [1]))
    let b = Parameter("b", Tensor(zeros: [1]))
    a.gradient = Tensor(shape: [1], storage: [3])
    b.gradient = Tensor(shape: [1], storage: [4])
    let norm = clipGradientsByGlobalNorm([a, b], maxNorm: 1)
    #expect(abs(norm - 5) < 1e-6)
    #expect(abs(a.gradient.storage[0] - 0.6) < 1e-5 && abs(b.gradient.storage[0] - 0.8) < 1e-5)
    #expect(abs(clipGradientsByGlobalNorm([a, b], maxNorm: 10) - 1) < 1e-5)
    #expect(abs(a.gradient.storage[0] - 0.6) < 1e-5)
  }

  @Test(arguments: [(6, 4), (4, 6), (5, 5)])
  func orthogonalInit(rows: Int, cols: Int) {
    var rng = SeededRandom(seed: 11)
    let q = Initializer.orthogonal(rows: rows, cols: cols, rng: &rng)
    let tall = rows >= cols
    let n = min(rows, cols)
    for i in 0..<n {
      for j in 0..<n {
        var dot: Float = 0
        for k in 0..<max(rows, cols) {
          dot +=
            tall
            ? q.storage[k * cols + i] * q.storage[k * cols + j]
            : q.storage[i * cols + k] * q.storage[j * cols + k]
        }
        #expect(abs(dot - (i == j ? 1 : 0)) < 1e-5)
      }
    }
  }

  /// Building a network only to load weights into it: no orthonormalisation, but the
  /// generator ends exactly where a real initialisation leaves it.
  @Test func orthogonalSkippedWhenWeightsFollow() {
    var real = SeededRandom(seed: 5)
    let q = Initializer.orthogonal(rows: 6, cols: 4, rng: &real)
    var skipped = SeededRandom(seed: 5)
    let z = Initializer.$weightsFollow.withValue(true) {
      Initializer.orthogonal(rows: 6, cols: 4, rng: &skipped)
    }
    #expect(z.shape == q.shape && z.storage.allSatisfy { $0 == 0 })
    #expect(q.storage.contains { $0 != 0 })
    #expect(real.nextNormal() == skipped.nextNormal())
  }

  @Test func xorLearns() {
    var rng = SeededRandom(seed: 42)
    let l1 = Dense(inputSize: 2, outputSize: 8, activation: .tanh, name: "l1", rng: &rng)
    let l2 = Dense(inputSize: 8, outputSize: 1, name: "l2", rng: &rng)
    let params = l1.parameters + l2.parameters
    let adam = Adam(parameters: params, learningRate: 0.05)
    let x = Tensor(shape: [4, 2], storage: [0, 0, 0, 1, 1, 0, 1, 1])
    let y = Tensor(shape: [4, 1], storage: [0, 1, 1, 0])
    var first: Float = 0
    var last: Float = 0
    for step in 0..<300 {
      let tape = Tape()
      let loss = binaryCrossEntropy(
        logits: l2(l1(tape.constant(x), tape: tape), tape: tape), targets: y)
      if step == 0 { first = loss.value.scalar }
      last = loss.value.scalar
      zeroGradients(params)
      tape.backward(loss)
      adam.step()
    }
    #expect(last < first / 20, "loss \(first) → \(last)")
  }
}
