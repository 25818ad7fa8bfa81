import Engine

/// Instance normalisation (Ulyanov et al. 2016) of [B, C, H, W]: every channel of every
/// image is normalised over its own H×W,
///
/// ```
/// y = scale[c] · (x − μ_bc) / sqrt(σ²_bc + ε) + offset[c]
/// ```
/// with the biased variance and no running statistics, so training and inference agree
/// (PyTorch's `InstanceNorm2d`, which CycleGAN uses with `affine: false`). The gradient flows
/// through μ and σ². One fused op: `batchNorm` over [1, B·C, H·W] (each (b, c) a "feature"),
/// then the optional per-channel affine map by broadcasting.
public func instanceNorm(_ x: Var, scale: Var? = nil, offset: Var? = nil, epsilon: Float = 1e-5) -> Var {
  let s = x.shape
  precondition(s.count == 4, "instanceNorm wants [B, C, H, W], got \(s)")
  let (B, C) = (s[0], s[1])
  let tape = x.tape
  let features = B * C
  let (flat, _) = batchNorm(
    x.reshaped([1, features, s[2] * s[3]]), scale: tape.constant(Tensor(repeating: 1, shape: [features])),
    offset: tape.constant(Tensor(zeros: [features])), axis: 1, epsilon: epsilon)
  var y = flat.reshaped(s)
  if let scale {
    precondition(scale.shape == [C], "instanceNorm scale \(scale.shape) vs \(C) channels")
    y = y * scale.reshaped([1, C, 1, 1])
  }
  if let offset {
    precondition(offset.shape == [C], "instanceNorm offset \(offset.shape) vs \(C) channels")
    y = y + offset.reshaped([1, C, 1, 1])
  }
  return y
}

/// Instance normalisation layer over [B, C, H, W]; `affine` adds a learned per-channel
/// `"<name>.weight"` (ones) and `"<name>.bias"` (zeros), PyTorch's names.
public struct InstanceNorm: Layer {
  public let scale: Parameter?
  public let offset: Parameter?
  public let epsilon: Float

  public init(channels: Int, affine: Bool = false, epsilon: Float = 1e-5, name: String) {
    scale = affine ? Parameter(qualifiedName(name, "weight"), Tensor(repeating: 1, shape: [channels])) : nil
    offset = affine ? Parameter(qualifiedName(name, "bias"), Tensor(zeros: [channels])) : nil
    self.epsilon = epsilon
  }

  public var parameters: [Parameter] { [scale, offset].compactMap { $0 } }

  public func callAsFunction(_ x: Var, tape: Tape) -> Var {
    instanceNorm(
      x, scale: scale.map { tape.parameter($0) }, offset: offset.map { tape.parameter($0) }, epsilon: epsilon)
  }
}
