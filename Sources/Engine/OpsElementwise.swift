// Broadcasting arithmetic and elementwise functions. Backward for each lives in the
// `backwardPrimitive` switch in Op.swift.

func sameTape(_ a: Var, _ b: Var, _ what: StaticString) -> Tape {
  precondition(a.tape === b.tape, "\(what): operands live on different tapes")
  return a.tape
}

// MARK: Binary arithmetic (numpy broadcasting; backward sums over broadcast axes)

/// `a + b` with numpy broadcasting.
public func + (a: Var, b: Var) -> Var {
  sameTape(a, b, "+").append(
    broadcastBinary(a.value, b.value, "+", +), op: .add, inputs: [a.id, b.id])
}

/// `a − b` with numpy broadcasting.
public func - (a: Var, b: Var) -> Var {
  sameTape(a, b, "-").append(
    broadcastBinary(a.value, b.value, "-", -), op: .subtract, inputs: [a.id, b.id])
}

/// `a ⊙ b` (elementwise) with numpy broadcasting.
public func * (a: Var, b: Var) -> Var {
  sameTape(a, b, "*").append(
    broadcastBinary(a.value, b.value, "*", *), op: .multiply, inputs: [a.id, b.id])
}

/// `a / b` (elementwise) with numpy broadcasting.
public func / (a: Var, b: Var) -> Var {
  sameTape(a, b, "/").append(
    broadcastBinary(a.value, b.value, "/", /), op: .divide, inputs: [a.id, b.id])
}

// MARK: Scalar arithmetic

func affine(_ x: Var, scale: Float, shift: Float) -> Var {
  let y = x.value.map { scale * $0 + shift }
  return x.tape.append(y, op: .affine(scale: scale, shift: shift), inputs: [x.id])
}

public func + (a: Var, s: Float) -> Var { affine(a, scale: 1, shift: s) }
public func + (s: Float, a: Var) -> Var { affine(a, scale: 1, shift: s) }
public func - (a: Var, s: Float) -> Var { affine(a, scale: 1, shift: -s) }
public func - (s: Float, a: Var) -> Var { affine(a, scale: -1, shift: s) }
public func * (a: Var, s: Float) -> Var { affine(a, scale: s, shift: 0) }
public func * (s: Float, a: Var) -> Var { affine(a, scale: s, shift: 0) }
public func / (a: Var, s: Float) -> Var { affine(a, scale: 1 / s, shift: 0) }
/// `s / a`, elementwise.
public func / (s: Float, a: Var) -> Var {
  a.tape.append(a.value.map { s / $0 }, op: .reciprocal(numerator: s), inputs: [a.id])
}
public prefix func - (a: Var) -> Var { affine(a, scale: -1, shift: 0) }

// MARK: Elementwise functions

func kernelOp(
  _ x: Var, _ op: Op, _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
) -> Var {
  x.tape.append(Kernels.apply(kernel, x.value), op: op, inputs: [x.id])
}

/// `eˣ` (vectorised; see `Kernels` for accuracy).
public func exp(_ x: Var) -> Var { kernelOp(x, .exp) { Kernels.exp($0, $1, count: $2) } }
/// Natural logarithm; `log(0) = -inf`.
public func log(_ x: Var) -> Var { kernelOp(x, .log) { Kernels.log($0, $1, count: $2) } }
/// Hyperbolic tangent.
public func tanh(_ x: Var) -> Var { kernelOp(x, .tanh) { Kernels.tanh($0, $1, count: $2) } }
/// Logistic function `1 / (1 + e⁻ˣ)`.
public func sigmoid(_ x: Var) -> Var {
  kernelOp(x, .sigmoid) { Kernels.sigmoid($0, $1, count: $2) }
}
/// `max(x, 0)`; gradient 0 at 0.
public func relu(_ x: Var) -> Var {
  x.tape.append(x.value.map { $0 > 0 ? $0 : 0 }, op: .relu, inputs: [x.id])
}
/// `x` for positive inputs, `slope · x` otherwise.
public func leakyRelu(_ x: Var, slope: Float = 0.01) -> Var {
  x.tape.append(
    x.value.map { $0 > 0 ? $0 : slope * $0 }, op: .leakyRelu(slope: slope), inputs: [x.id])
}
/// `log(1 + eˣ)`, computed as `max(x, 0) + log1p(e^{−|x|})` so it neither overflows nor
/// loses small values.
public func softplus(_ x: Var) -> Var {
  x.tape.append(
    x.value.map { max($0, 0) + _log1p(_exp(-Swift.abs($0))) }, op: .softplus, inputs: [x.id])
}
/// Square root; the gradient is infinite at 0.
public func sqrt(_ x: Var) -> Var {
  x.tape.append(x.value.map { $0.squareRoot() }, op: .sqrt, inputs: [x.id])
}
/// `x²`.
public func square(_ x: Var) -> Var {
  x.tape.append(x.value.map { $0 * $0 }, op: .square, inputs: [x.id])
}
/// `|x|`; gradient 0 at 0.
public func abs(_ x: Var) -> Var {
  x.tape.append(x.value.map { Swift.abs($0) }, op: .abs, inputs: [x.id])
}

// MARK: Dropout

/// Inverted dropout: while training, each element is zeroed with probability `rate` and
/// the survivors scaled by `1 / (1 − rate)`, so the expectation is unchanged; identity
/// when not training (or `rate == 0`). Draws one number per element from `rng`.
public func dropout<R: RandomNumberGenerator>(
  _ x: Var, rate: Float, rng: inout R, training: Bool
) -> Var {
  precondition(rate >= 0 && rate < 1, "dropout rate \(rate) must be in [0, 1)")
  if !training || rate == 0 { return x }
  return x * x.tape.constant(dropoutMask(shape: x.shape, rate: rate, rng: &rng))
}

/// The mask `dropout` multiplies by (0 or `1 / (1 − rate)`, row-major, one draw per element):
/// drawn for a whole batch, its rows are what `dropout` would apply to each row, so a shard
/// of the batch (data-parallel training) can be given exactly its rows' mask.
public func dropoutMask<R: RandomNumberGenerator>(shape: [Int], rate: Float, rng: inout R) -> Tensor {
  precondition(rate >= 0 && rate < 1, "dropout rate \(rate) must be in [0, 1)")
  let keep = 1 / (1 - rate)
  return Tensor(shape: shape) { p in
    for i in 0..<p.count {
      let u = Float(rng.next() >> 40) * 0x1p-24
      p[i] = u >= rate ? keep : 0
    }
  }
}
