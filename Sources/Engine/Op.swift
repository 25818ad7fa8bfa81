/// The primitive operations the tape knows. Forward functions live in `Ops*.swift`;
/// `backwardPrimitive` below is the one switch over the derivatives. Cases carry only what
/// the backward needs beyond the input and output values already on the tape.
@usableFromInline
enum Op {
  case constant
  case parameter(Parameter)
  case variable
  case custom(any CustomBackward)

  // Broadcasting binary arithmetic.
  case add, subtract, multiply, divide
  /// `y = scale · x + shift` (scalar arithmetic and negation).
  case affine(scale: Float, shift: Float)
  /// `y = numerator / x`.
  case reciprocal(numerator: Float)

  // Elementwise functions.
  case exp, log, tanh, sigmoid, relu, softplus, sqrt, square, abs
  case leakyRelu(slope: Float)

  // Reductions.
  case sumAll
  /// Sum over axes; `keptShape` is the input shape with 1 on the reduced axes.
  case sumAxes(keptShape: [Int])
  /// Maximum along an axis; `argmax[o]` is the flat input index that won output `o`.
  case max(argmax: [Int])
  case logSumExp(axis: Int)

  // Linear algebra.
  case matmul(transposeA: Bool, transposeB: Bool)
  case batchedMatmul(transposeA: Bool, transposeB: Bool)

  // Shape and indexing.
  case reshape
  case permute(axes: [Int])
  case slice(axis: Int, start: Int)
  case concat(axis: Int)
  case gather(indices: [Int])

  // Fused normalisations (masked positions are recognisable from the output alone).
  case softmax(axis: Int)
  case logSoftmax(axis: Int)
}

extension Tape {
  func wantsGradient(_ id: Int) -> Bool { nodes[id].needsGradient }

  @usableFromInline
  func backwardPrimitive(_ node: Node, id: Int, outputGradient g: Tensor) {
    let inputs = node.inputs
    switch node.op {
    case .add:
      for i in inputs where wantsGradient(i) {
        accumulateGradient(i, g.summed(toShape: values[i].shape))
      }
    case .subtract:
      if wantsGradient(inputs[0]) {
        accumulateGradient(inputs[0], g.summed(toShape: values[inputs[0]].shape))
      }
      if wantsGradient(inputs[1]) {
        accumulateGradient(inputs[1], g.summed(toShape: values[inputs[1]].shape).scaled(by: -1))
      }
    case .multiply:
      let a = values[inputs[0]]
      let b = values[inputs[1]]
      if wantsGradient(inputs[0]) {
        accumulateGradient(
          inputs[0], broadcastBinary(g, b, "multiply backward", *).summed(toShape: a.shape))
      }
      if wantsGradient(inputs[1]) {
        accumulateGradient(
          inputs[1], broadcastBinary(g, a, "multiply backward", *).summed(toShape: b.shape))
      }
    case .divide:
      let a = values[inputs[0]]
      let b = values[inputs[1]]
      let y = values[id]
      if wantsGradient(inputs[0]) {
        accumulateGradient(
          inputs[0], broadcastBinary(g, b, "divide backward", /).summed(toShape: a.shape))
      }
      if wantsGradient(inputs[1]) {
        // d(a/b)/db = −a/b² = −y/b
        let gy = broadcastBinary(g, y, "divide backward") { -$0 * $1 }
        accumulateGradient(
          inputs[1], broadcastBinary(gy, b, "divide backward", /).summed(toShape: b.shape))
      }
    case .affine(let scale, _):
      accumulateGradient(inputs[0], g.scaled(by: scale))
    case .reciprocal:
      let x = values[inputs[0]]
      let y = values[id]
      accumulateGradient(inputs[0], zipMap(g, y, x) { g, y, x in -g * y / x })

    case .exp:
      accumulateGradient(inputs[0], zipMap(g, values[id]) { $0 * $1 })
    case .log:
      accumulateGradient(inputs[0], zipMap(g, values[inputs[0]]) { $0 / $1 })
    case .tanh:
      accumulateGradient(inputs[0], zipMap(g, values[id]) { g, y in g * (1 - y * y) })
    case .sigmoid:
      accumulateGradient(inputs[0], zipMap(g, values[id]) { g, y in g * y * (1 - y) })
    case .relu:
      accumulateGradient(inputs[0], zipMap(g, values[inputs[0]]) { g, x in x > 0 ? g : 0 })
    case .leakyRelu(let slope):
      accumulateGradient(inputs[0], zipMap(g, values[inputs[0]]) { g, x in x > 0 ? g : slope * g })
    case .softplus:
      // d softplus / dx = sigmoid(x) = 1 − exp(−softplus(x)).
      accumulateGradient(inputs[0], zipMap(g, values[id]) { g, y in g * -_expm1(-y) })
    case .sqrt:
      accumulateGradient(inputs[0], zipMap(g, values[id]) { g, y in g * 0.5 / y })
    case .square:
      accumulateGradient(inputs[0], zipMap(g, values[inputs[0]]) { g, x in 2 * g * x })
    case .abs:
      accumulateGradient(
        inputs[0], zipMap(g, values[inputs[0]]) { g, x in x > 0 ? g : (x < 0 ? -g : 0) })

    case .sumAll:
      accumulateGradient(inputs[0], Tensor(repeating: g.scalar, shape: values[inputs[0]].shape))
    case .sumAxes(let kept):
      accumulateGradient(inputs[0], g.reshaped(kept).broadcast(to: values[inputs[0]].shape))
    case .max(let argmax):
      var gx = Tensor(zeros: values[inputs[0]].shape)
      gx.storage.withUnsafeMutableBufferPointer { px in
        g.storage.withUnsafeBufferPointer { pg in
          for o in 0..<argmax.count { px[argmax[o]] += pg[o] }
        }
      }
      accumulateGradient(inputs[0], gx)
    case .logSumExp(let axis):
      accumulateGradient(inputs[0], logSumExpBackward(values[inputs[0]], values[id], g, axis: axis))

    case .matmul(let tA, let tB):
      let a = values[inputs[0]]
      let b = values[inputs[1]]
      if wantsGradient(inputs[0]) {
        accumulateGradient(inputs[0], matmulGradientA(a, b, g, tA, tB, matmulPlain))
      }
      if wantsGradient(inputs[1]) {
        accumulateGradient(inputs[1], matmulGradientB(a, b, g, tA, tB, matmulPlain))
      }
    case .batchedMatmul(let tA, let tB):
      let a = values[inputs[0]]
      let b = values[inputs[1]]
      if wantsGradient(inputs[0]) {
        accumulateGradient(inputs[0], matmulGradientA(a, b, g, tA, tB, batchedMatmulForward))
      }
      if wantsGradient(inputs[1]) {
        accumulateGradient(inputs[1], matmulGradientB(a, b, g, tA, tB, batchedMatmulForward))
      }

    case .reshape:
      accumulateGradient(inputs[0], g.reshaped(values[inputs[0]].shape))
    case .permute(let axes):
      var inverse = axes
      for (i, a) in axes.enumerated() { inverse[a] = i }
      accumulateGradient(inputs[0], g.permuted(inverse))
    case .slice(let axis, let start):
      var gx = Tensor(zeros: values[inputs[0]].shape)
      gx.addSlice(g, axis: axis, start: start)
      accumulateGradient(inputs[0], gx)
    case .concat(let axis):
      var start = 0
      for i in inputs {
        let size = values[i].shape[axis]
        if wantsGradient(i) {
          accumulateGradient(i, g.sliced(axis: axis, range: start..<start + size))
        }
        start += size
      }
    case .gather(let indices):
      var gx = Tensor(zeros: values[inputs[0]].shape)
      let row = g.count / max(1, indices.count)
      gx.storage.withUnsafeMutableBufferPointer { px in
        g.storage.withUnsafeBufferPointer { pg in
          for (r, index) in indices.enumerated() {
            for j in 0..<row { px[index * row + j] += pg[r * row + j] }
          }
        }
      }
      accumulateGradient(inputs[0], gx)

    case .softmax(let axis):
      accumulateGradient(inputs[0], softmaxBackward(values[id], g, axis: axis, log: false))
    case .logSoftmax(let axis):
      accumulateGradient(inputs[0], softmaxBackward(values[id], g, axis: axis, log: true))

    case .constant, .parameter, .variable, .custom:
      break
    }
  }
}

/// Gradient of `op(A)·op(B)` with respect to A, for either GEMM flavour.
@usableFromInline
func matmulGradientA(
  _ a: Tensor, _ b: Tensor, _ g: Tensor, _ tA: Bool, _ tB: Bool,
  _ mm: (Tensor, Tensor, Bool, Bool) -> Tensor
) -> Tensor {
  switch (tA, tB) {
  case (false, false): return mm(g, b, false, true)  // G Bᵀ
  case (false, true): return mm(g, b, false, false)  // G B
  case (true, false): return mm(b, g, false, true)  // B Gᵀ
  case (true, true): return mm(b, g, true, true)  // Bᵀ Gᵀ
  }
}

/// Gradient of `op(A)·op(B)` with respect to B.
@usableFromInline
func matmulGradientB(
  _ a: Tensor, _ b: Tensor, _ g: Tensor, _ tA: Bool, _ tB: Bool,
  _ mm: (Tensor, Tensor, Bool, Bool) -> Tensor
) -> Tensor {
  switch (tA, tB) {
  case (false, false): return mm(a, g, true, false)  // Aᵀ G
  case (false, true): return mm(g, a, true, false)  // Gᵀ A
  case (true, false): return mm(a, g, false, false)  // A G
  case (true, true): return mm(g, a, true, true)  // Gᵀ Aᵀ
  }
}

/// `f(a[i], b[i])` over two same-shaped tensors.
@inline(__always)
func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
  precondition(a.shape == b.shape, "elementwise shapes \(a.shape) and \(b.shape)")
  var out = a
  out.storage.withUnsafeMutableBufferPointer { o in
    b.storage.withUnsafeBufferPointer { y in
      for i in 0..<o.count { o[i] = f(o[i], y[i]) }
    }
  }
  return out
}

/// `f(a[i], b[i], c[i])` over three same-shaped tensors.
@inline(__always)
func zipMap(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
  precondition(
    a.shape == b.shape && a.shape == c.shape,
    "elementwise shapes \(a.shape), \(b.shape) and \(c.shape)")
  var out = a
  out.storage.withUnsafeMutableBufferPointer { o in
    b.storage.withUnsafeBufferPointer { y in
      c.storage.withUnsafeBufferPointer { z in
        for i in 0..<o.count { o[i] = f(o[i], y[i], z[i]) }
      }
    }
  }
  return out
}
