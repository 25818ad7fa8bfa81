import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Errors restoring optimiser state.
public enum OptimizerStateError: Error, CustomStringConvertible, Equatable {
  case missing(String)
  case shapeMismatch(name: String, expected: [Int], found: [Int])

  public var description: String {
    switch self {
    case .missing(let n): return "optimizer state: missing tensor '\(n)'"
    case .shapeMismatch(let n, let e, let f):
      return "optimizer state: '\(n)' has shape \(f), expected \(e)"
    }
  }
}

/// Weight decay for Adam.
public enum WeightDecay: Sendable, Equatable {
  case none
  /// L2 penalty: `λ·θ` added to the gradient before the moments (PyTorch `Adam(weight_decay:)`).
  case l2(Float)
  /// Decoupled: `θ ← θ − lr·λ·θ` beside the Adam step (Loshchilov & Hutter 2019, `AdamW`).
  case decoupled(Float)
}

/// An optimiser over a fixed list of parameters, with state that checkpoints can save.
public protocol Optimizer: AnyObject {
  var learningRate: Float { get set }
  /// Updates every parameter from its `gradient` (it does not zero the gradients).
  func step()
  /// The state as named tensors (`"<parameter>.exp_avg"`, `"step"`, …).
  func stateTensors() -> [String: Tensor]
  /// Restores state written by `stateTensors()`.
  func loadState(_ tensors: [String: Tensor]) throws
}

/// Adam (Kingma & Ba 2015) exactly as PyTorch's `torch.optim.Adam`: bias-corrected moments
/// and ε added *after* the square root of the corrected second moment,
///
/// ```
/// m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
/// θ ← θ − lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + ε)
/// ```
/// Defaults β1 0.9, β2 0.999, ε 1e-8 (PyTorch's and the Adam paper's; Keras' ε is 1e-7 and
/// sits outside the uncorrected root).
public final class Adam: Optimizer {
  /// Where the bias corrections are rounded: the same formula, different last bits, so a run
  /// resumes bit-exactly only with the rounding it was trained with.
  public enum BiasCorrection: Sendable, Equatable {
    /// PyTorch's: `lr/(1−β1ᵗ)` and `√(1−β2ᵗ)` in Double, folded into the step size.
    case foldedIntoStep
    /// The Adam paper's Algorithm 1 in Float: `m̂ = m/(1−β1ᵗ)`, `v̂ = v/(1−β2ᵗ)`,
    /// `θ ← θ − lr·m̂/(√v̂ + ε)` (what the Grammar VAE's models were trained with).
    case correctedMoments
  }

  public struct Hyperparameters: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: WeightDecay = .none
    public var biasCorrection: BiasCorrection = .foldedIntoStep

    public init(
      learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
      weightDecay: WeightDecay = .none, biasCorrection: BiasCorrection = .foldedIntoStep
    ) {
      self.learningRate = learningRate
      self.beta1 = beta1
      self.beta2 = beta2
      self.epsilon = epsilon
      self.weightDecay = weightDecay
      self.biasCorrection = biasCorrection
    }
  }

  /// Per-parameter moments.
  public struct State: Sendable, Equatable {
    public var m: Tensor
    public var v: Tensor
    public init(m: Tensor, v: Tensor) {
      self.m = m
      self.v = v
    }
    public init(zerosLike shape: [Int]) {
      self.init(m: Tensor(zeros: shape), v: Tensor(zeros: shape))
    }
  }

  public let parameters: [Parameter]
  public var hyperparameters: Hyperparameters
  public private(set) var states: [State]
  /// Number of steps taken (t in the bias corrections).
  public private(set) var stepCount: Int = 0

  public var learningRate: Float {
    get { hyperparameters.learningRate }
    set { hyperparameters.learningRate = newValue }
  }

  public init(parameters: [Parameter], hyperparameters: Hyperparameters = Hyperparameters()) {
    self.parameters = parameters
    self.hyperparameters = hyperparameters
    self.states = parameters.map { State(zerosLike: $0.value.shape) }
  }

  public convenience init(parameters: [Parameter], learningRate: Float) {
    self.init(parameters: parameters, hyperparameters: Hyperparameters(learningRate: learningRate))
  }

  /// The pure update rule: one Adam step for one parameter at step `t` (1-based).
  public static func update(
    parameter: Tensor, gradient: Tensor, state: State, step t: Int,
    hyperparameters h: Hyperparameters
  ) -> (parameter: Tensor, state: State) {
    var p = parameter
    var s = state
    updateInPlace(&p, gradient: gradient, state: &s, step: t, hyperparameters: h)
    return (p, s)
  }

  static func updateInPlace(
    _ p: inout Tensor, gradient: Tensor, state s: inout State, step t: Int,
    hyperparameters h: Hyperparameters
  ) {
    precondition(
      p.shape == gradient.shape, "Adam: parameter \(p.shape) vs gradient \(gradient.shape)")
    let b1 = h.beta1
    let b2 = h.beta2
    let eps = h.epsilon
    let lr = h.learningRate
    var l2: Float = 0
    var decoupled: Float = 0
    switch h.weightDecay {
    case .none: break
    case .l2(let l): l2 = l
    case .decoupled(let l): decoupled = lr * l
    }
    let n = p.count
    p.withMutablePointer { pp in
      gradient.withPointer { pg in
        s.m.withMutablePointer { pm in
          s.v.withMutablePointer { pv in
            switch h.biasCorrection {
            case .foldedIntoStep:
              let c1 = 1 - pow(Double(b1), Double(t))
              let c2 = 1 - pow(Double(b2), Double(t))
              let stepSize = Float(Double(lr) / c1)
              let rootC2 = Float(c2.squareRoot())
              // 16 lanes at a time (the compiler keeps the scalar loop scalar: the four
              // pointers may alias); the same operations in the same order per element, so
              // the results are bit for bit the scalar loop's.
              typealias V = SIMD16<Float>
              let w = V.scalarCount
              var i = 0
              while i + w <= n {
                let pi = UnsafeMutableRawPointer(pp + i)
                let mi = UnsafeMutableRawPointer(pm + i)
                let vi = UnsafeMutableRawPointer(pv + i)
                let param = pi.loadUnaligned(as: V.self)
                let g = UnsafeRawPointer(pg + i).loadUnaligned(as: V.self) + l2 * param
                let m = b1 * mi.loadUnaligned(as: V.self) + (1 - b1) * g
                let v = b2 * vi.loadUnaligned(as: V.self) + (1 - b2) * g * g
                let update = stepSize * m / (v.squareRoot() / rootC2 + eps)
                mi.storeBytes(of: m, as: V.self)
                vi.storeBytes(of: v, as: V.self)
                pi.storeBytes(of: param - decoupled * param - update, as: V.self)
                i += w
              }
              for i in i..<n {
                let g = pg[i] + l2 * pp[i]
                pm[i] = b1 * pm[i] + (1 - b1) * g
                pv[i] = b2 * pv[i] + (1 - b2) * g * g
                let update = stepSize * pm[i] / (pv[i].squareRoot() / rootC2 + eps)
                pp[i] = pp[i] - decoupled * pp[i] - update
              }
            case .correctedMoments:
              let c1 = 1 - powf(b1, Float(t))
              let c2 = 1 - powf(b2, Float(t))
              for i in 0..<n {
                let g = pg[i] + l2 * pp[i]
                pm[i] = b1 * pm[i] + (1 - b1) * g
                pv[i] = b2 * pv[i] + (1 - b2) * g * g
                let update = lr * (pm[i] / c1) / ((pv[i] / c2).squareRoot() + eps)
                pp[i] = pp[i] - decoupled * pp[i] - update
              }
            }
          }
        }
      }
    }
  }

  public func step() {
    stepCount += 1
    for (k, p) in parameters.enumerated() {
      Adam.updateInPlace(
        &p.value, gradient: p.gradient, state: &states[k], step: stepCount,
        hyperparameters: hyperparameters)
    }
  }

  /// PyTorch's names: `"<param>.exp_avg"`, `"<param>.exp_avg_sq"`, and `"step"`.
  public func stateTensors() -> [String: Tensor] {
    var out: [String: Tensor] = ["step": Tensor(shape: [1], storage: [Float(stepCount)])]
    for (p, s) in zip(parameters, states) {
      out[p.name + ".exp_avg"] = s.m
      out[p.name + ".exp_avg_sq"] = s.v
    }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    guard let step = tensors["step"], step.count == 1 else {
      throw OptimizerStateError.missing("step")
    }
    var newStates: [State] = []
    for p in parameters {
      let m = try stateTensor(tensors, p.name + ".exp_avg", shape: p.value.shape)
      let v = try stateTensor(tensors, p.name + ".exp_avg_sq", shape: p.value.shape)
      newStates.append(State(m: m, v: v))
    }
    states = newStates
    stepCount = Int(step.storage[0])
  }
}

func stateTensor(_ tensors: [String: Tensor], _ name: String, shape: [Int]) throws -> Tensor {
  guard let t = tensors[name] else { throw OptimizerStateError.missing(name) }
  guard t.shape == shape else {
    throw OptimizerStateError.shapeMismatch(name: name, expected: shape, found: t.shape)
  }
  return t
}

/// Stochastic gradient descent with momentum, as PyTorch's `torch.optim.SGD`:
///
/// ```
/// b ← μ·b + g  (b = g on the first step);  θ ← θ − lr·b      (Nesterov: θ ← θ − lr·(g + μ·b))
/// ```
public final class SGD: Optimizer {
  public let parameters: [Parameter]
  public var learningRate: Float
  public var momentum: Float
  public var nesterov: Bool
  public var weightDecay: Float
  /// Momentum buffers; nil until the first step.
  public private(set) var buffers: [Tensor?]

  public init(
    parameters: [Parameter], learningRate: Float, momentum: Float = 0, nesterov: Bool = false,
    weightDecay: Float = 0
  ) {
    self.parameters = parameters
    self.learningRate = learningRate
    self.momentum = momentum
    self.nesterov = nesterov
    self.weightDecay = weightDecay
    self.buffers = Array(repeating: nil, count: parameters.count)
  }

  /// The pure update rule for one parameter.
  public static func update(
    parameter: Tensor, gradient: Tensor, buffer: Tensor?, learningRate: Float, momentum: Float,
    nesterov: Bool = false, weightDecay: Float = 0
  ) -> (parameter: Tensor, buffer: Tensor?) {
    precondition(
      parameter.shape == gradient.shape,
      "SGD: parameter \(parameter.shape) vs gradient \(gradient.shape)")
    var p = parameter
    var g = gradient
    for i in 0..<g.count { g.storage[i] += weightDecay * p.storage[i] }
    var b: Tensor? = nil
    if momentum != 0 {
      var nb = g
      if let buffer {
        for i in 0..<nb.count { nb.storage[i] = momentum * buffer.storage[i] + g.storage[i] }
      }
      if nesterov {
        for i in 0..<g.count { g.storage[i] += momentum * nb.storage[i] }
      } else {
        g = nb
      }
      b = nb
    }
    for i in 0..<p.count { p.storage[i] -= learningRate * g.storage[i] }
    return (p, b)
  }

  public func step() {
    for (k, p) in parameters.enumerated() {
      let (np, nb) = SGD.update(
        parameter: p.value, gradient: p.gradient, buffer: buffers[k], learningRate: learningRate,
        momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
      p.value = np
      buffers[k] = nb
    }
  }

  /// `"<param>.momentum_buffer"` for each parameter that has one.
  public func stateTensors() -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (p, b) in zip(parameters, buffers) { if let b { out[p.name + ".momentum_buffer"] = b } }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    var newBuffers: [Tensor?] = []
    for p in parameters {
      let name = p.name + ".momentum_buffer"
      newBuffers.append(
        tensors[name] == nil ? nil : try stateTensor(tensors, name, shape: p.value.shape))
    }
    buffers = newBuffers
  }
}

/// The L2 norm of all gradients together, summed in Double element by element.
public func globalGradientNorm(_ parameters: [Parameter]) -> Float {
  var sq = 0.0
  for p in parameters {
    let n = p.gradient.count
    p.gradient.withPointer { pg in
      for i in 0..<n { sq += Double(pg[i]) * Double(pg[i]) }
    }
  }
  return Float(sq.squareRoot())
}

/// Scales all gradients by `maxNorm / (norm + epsilon)` when their global L2 norm exceeds
/// `maxNorm`; returns the norm before clipping (PyTorch's `clip_grad_norm_`, whose ε is 1e-6).
@discardableResult
public func clipGradientsByGlobalNorm(
  _ parameters: [Parameter], maxNorm: Float, epsilon: Float = 1e-6
) -> Float {
  let norm = globalGradientNorm(parameters)
  if norm > maxNorm && norm > 0 {
    let k = maxNorm / (norm + epsilon)
    for p in parameters {
      let n = p.gradient.count
      p.gradient.withMutablePointer { pg in for i in 0..<n { pg[i] *= k } }
    }
  }
  return norm
}

/// Zeroes every parameter's gradient.
public func zeroGradients(_ parameters: [Parameter]) {
  for p in parameters { p.zeroGradient() }
}

// MARK: - Learning-rate schedules

/// Multiplies the learning rate by `factor` when the monitored metric (lower is better) has
/// not improved by more than `minDelta` for `patience` epochs, never below `minLearningRate`.
///
/// Keras' `ReduceLROnPlateau` semantics (the paper's code: factor 0.2, patience 3, min 1e-4):
/// the counter resets on improvement and after each reduction, and the reduction happens on
/// the `patience`-th non-improving epoch (PyTorch's waits one epoch more). The metric is
/// compared in Double, as Keras does; `best` and `wait` are settable to restore a checkpoint.
public struct ReduceLROnPlateau: Sendable, Equatable {
  public var factor: Float
  public var patience: Int
  public var minLearningRate: Float
  public var minDelta: Double
  public var cooldown: Int
  public var best: Double = .infinity
  public var wait = 0
  public private(set) var cooldownLeft = 0

  public init(
    factor: Float = 0.2, patience: Int = 3, minLearningRate: Float = 1e-4, minDelta: Double = 1e-4,
    cooldown: Int = 0
  ) {
    self.factor = factor
    self.patience = patience
    self.minLearningRate = minLearningRate
    self.minDelta = minDelta
    self.cooldown = cooldown
  }

  /// Records one epoch's metric; returns the learning rate to use next.
  public mutating func step(metric: Double, learningRate: Float) -> Float {
    if cooldownLeft > 0 { cooldownLeft -= 1 }
    if metric < best - minDelta {
      best = metric
      wait = 0
      return learningRate
    }
    if cooldownLeft > 0 { return learningRate }
    wait += 1
    guard wait >= patience, learningRate > minLearningRate else { return learningRate }
    wait = 0
    cooldownLeft = cooldown
    return max(learningRate * factor, minLearningRate)
  }

  public mutating func step(metric: Float, learningRate: Float) -> Float {
    step(metric: Double(metric), learningRate: learningRate)
  }
}

/// `lr = base · gamma^⌊epoch / stepSize⌋` (PyTorch's `StepLR`).
public struct StepLR: Sendable {
  public var baseLearningRate: Float
  public var stepSize: Int
  public var gamma: Float

  public init(baseLearningRate: Float, stepSize: Int, gamma: Float = 0.1) {
    self.baseLearningRate = baseLearningRate
    self.stepSize = stepSize
    self.gamma = gamma
  }

  public func learningRate(epoch: Int) -> Float {
    baseLearningRate * Float(pow(Double(gamma), Double(epoch / max(stepSize, 1))))
  }
}
