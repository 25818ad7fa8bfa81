/// A trainable tensor with its accumulated gradient. Layers hold these; optimisers
/// update `value` from `gradient`; checkpoints save them by `name`.
public final class Parameter: @unchecked Sendable {
  public let name: String
  public var value: Tensor
  public var gradient: Tensor

  public init(_ name: String, _ value: Tensor) {
    self.name = name
    self.value = value
    self.gradient = Tensor(zeros: value.shape)
  }

  public func zeroGradient() {
    gradient.storage.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
  }
}

/// A value recorded on a tape: an index into the tape's value list.
public struct Var {
  public let id: Int
  public let tape: Tape

  public var value: Tensor { tape.values[id] }
  public var shape: [Int] { tape.values[id].shape }
}

/// A fused operation defined outside Engine (for example the GRU in NN): it gets the
/// gradient of its output and the input values, and returns one gradient per input
/// (nil where an input needs none). It may keep whatever it saved in the forward pass.
public protocol CustomBackward: AnyObject {
  func backward(outputGradient: Tensor, inputs: [Tensor]) -> [Tensor?]
}

/// Define-by-run reverse-mode autodiff: operations append nodes in creation order,
/// `backward` replays them in reverse. A tape that is not recording (inference mode)
/// keeps only values: no nodes, no saved tensors, no gradient work.
public final class Tape {
  public let isRecording: Bool
  @usableFromInline var values: [Tensor] = []
  @usableFromInline var nodes: [Node] = []
  /// Set by `backward`: gradient of the loss for every value that needed one.
  @usableFromInline var gradients: [Tensor?] = []
  /// Called during `backward` as soon as a parameter's gradient from this tape is complete
  /// (its last use on the tape has been differentiated): data-parallel training starts
  /// sending it while the rest of the backward pass runs.
  public var onParameterGradient: ((Parameter) -> Void)? = nil

  public init(recording: Bool = true) {
    self.isRecording = recording
    _ = MemoryPolicy.configured
  }

  /// Number of recorded nodes (always 0 for a tape that is not recording).
  public var nodeCount: Int { nodes.count }

  /// Number of values produced on this tape so far.
  public var valueCount: Int { values.count }

  @usableFromInline
  struct Node {
    var op: Op
    var inputs: [Int]
    /// Whether any parameter lies upstream: nodes that don't need a gradient are skipped.
    var needsGradient: Bool
  }

  /// A constant: no gradient flows into it.
  public func constant(_ t: Tensor) -> Var { append(t, op: .constant, inputs: []) }

  /// A trainable leaf: `backward` accumulates into `parameter.gradient`; a frozen parameter
  /// is a constant.
  public func parameter(_ p: Parameter) -> Var {
    if !frozen.isEmpty && frozen.contains(ObjectIdentifier(p)) { return constant(p.value) }
    return append(p.value, op: .parameter(p), inputs: [])
  }

  /// Parameters read as constants on this tape from now on: no gradient, and layers skip
  /// the work of one (a GAN's discriminator while its generator trains through it).
  public func freeze(_ parameters: [Parameter]) {
    for p in parameters { frozen.insert(ObjectIdentifier(p)) }
  }
  var frozen: Set<ObjectIdentifier> = []

  /// A leaf whose gradient is wanted (for gradient checks and latent-space optimisation).
  public func variable(_ t: Tensor) -> Var { append(t, op: .variable, inputs: []) }

  /// Records a primitive operation's result.
  @usableFromInline
  func append(_ value: Tensor, op: Op, inputs: [Int]) -> Var {
    let id = values.count
    values.append(value)
    if isRecording {
      let needs: Bool
      switch op {
      case .parameter, .variable: needs = true
      case .constant: needs = false
      default: needs = inputs.contains { nodes[$0].needsGradient }
      }
      nodes.append(Node(op: needs ? op : .constant, inputs: inputs, needsGradient: needs))
    }
    return Var(id: id, tape: self)
  }

  /// Records the result of a fused operation with a hand-written backward.
  public func record(_ value: Tensor, inputs: [Var], backward: any CustomBackward) -> Var {
    append(value, op: .custom(backward), inputs: inputs.map(\.id))
  }

  /// Whether gradients will flow into this value (some parameter or variable is upstream).
  public func needsGradient(_ v: Var) -> Bool { isRecording && nodes[v.id].needsGradient }

  /// Back-propagates from a scalar (or from `seed` for a non-scalar output), accumulating
  /// into every upstream parameter's `gradient`.
  public func backward(_ output: Var, seed: Tensor? = nil) {
    precondition(isRecording, "backward on a tape that is not recording")
    let out = values[output.id]
    let seedGrad = seed ?? Tensor(repeating: 1, shape: out.shape)
    precondition(seedGrad.shape == out.shape, "seed \(seedGrad.shape) vs output \(out.shape)")
    gradients = [Tensor?](repeating: nil, count: values.count)
    gradients[output.id] = seedGrad
    // Uses of each parameter still to differentiate (a parameter may be a leaf more than once).
    var uses: [ObjectIdentifier: Int] = [:]
    if onParameterGradient != nil {
      for node in nodes[...output.id] {
        if case .parameter(let p) = node.op, node.needsGradient { uses[ObjectIdentifier(p), default: 0] += 1 }
      }
    }
    for id in stride(from: output.id, through: 0, by: -1) {
      if let hook = onParameterGradient, case .parameter(let p) = nodes[id].op, nodes[id].needsGradient {
        // Counted whether or not a gradient reached this use.
        if gradients[id] != nil { accumulate(into: &p.gradient, gradients[id]!) }
        gradients[id] = nil
        let key = ObjectIdentifier(p)
        uses[key, default: 1] -= 1
        if uses[key] == 0 { hook(p) }
        continue
      }
      guard nodes[id].needsGradient, let g = gradients[id] else { continue }
      gradients[id] = nil  // free as we go; leaves keep theirs below
      let node = nodes[id]
      switch node.op {
      case .parameter(let p):
        accumulate(into: &p.gradient, g)
      case .variable:
        gradients[id] = g
      case .constant:
        break
      case .custom(let fn):
        let grads = fn.backward(outputGradient: g, inputs: node.inputs.map { values[$0] })
        for (input, grad) in zip(node.inputs, grads) {
          if let grad { accumulateGradient(input, grad) }
        }
      default:
        backwardPrimitive(node, id: id, outputGradient: g)
      }
    }
  }

  /// The gradient of the last `backward` for a `variable` leaf.
  public func gradient(of v: Var) -> Tensor? { v.id < gradients.count ? gradients[v.id] : nil }

  @usableFromInline
  func accumulateGradient(_ id: Int, _ g: Tensor) {
    guard nodes[id].needsGradient else { return }
    precondition(
      g.shape == values[id].shape, "gradient \(g.shape) for value \(values[id].shape)")
    if gradients[id] == nil {
      gradients[id] = g
    } else {
      accumulate(into: &gradients[id]!, g)
    }
  }
}

/// `target += g`, elementwise, same shapes.
@inlinable
public func accumulate(into target: inout Tensor, _ g: Tensor) {
  precondition(target.shape == g.shape, "accumulate \(g.shape) into \(target.shape)")
  target.storage.withUnsafeMutableBufferPointer { t in
    g.storage.withUnsafeBufferPointer { s in
      for i in 0..<t.count { t[i] += s[i] }
    }
  }
}
